"""``Extensions``: the application state a worker shares with every task, by type.

A leaf module (standard library only): the worker options, the task context and the hook
records all name it, and none of them may pull the others in through it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


class Extensions:
    """Application state shared with every task, stored and fetched by type.

    ``WorkerOptions.add_extension(value)`` calls ``insert(value)``; handlers read it with
    ``ctx.extensions.get(MyState)`` or ``ctx.extensions[MyState]``.
    """

    def __init__(self, values: Sequence[object] = ()) -> None:
        self._values: dict[type, object] = {}
        for value in values:
            self.insert(value)

    def insert(self, value: object) -> object | None:
        """Store ``value`` under its type; returns the value it replaced, if any."""
        previous = self._values.get(type(value))
        self._values[type(value)] = value
        return previous

    def find(self, kind: type[T]) -> T | None:
        """The value stored for ``kind`` (or an instance of a subclass of it), else None."""
        value = self._values.get(kind)
        if value is None:
            value = next((v for v in self._values.values() if isinstance(v, kind)), None)
        return value if isinstance(value, kind) else None

    def get(self, kind: type[T]) -> T:
        """The value stored for ``kind``; KeyError naming the type when there is none."""
        value = self.find(kind)
        if value is None:
            raise KeyError(
                f"no extension of type {_type_name(kind)}: add one with "
                f"WorkerOptions.add_extension({kind.__name__}(...))"
            )
        return value

    def __getitem__(self, kind: type[T]) -> T:
        return self.get(kind)

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, type) and self.find(kind) is not None

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[object]:
        return iter(list(self._values.values()))

    def copy(self) -> Extensions:
        return Extensions(list(self._values.values()))

    def __repr__(self) -> str:
        names = ", ".join(_type_name(kind) for kind in self._values)
        return f"<Extensions [{names}]>"


def _type_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"
