"""``Extensions``: the application state a worker shares with every task, by type, and
``ReadOnlyExtensions``, the view of it each job gets.

A leaf module (standard library only): the worker options, the task context and the hook
records all name it, and none of them may pull the others in through it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import NoReturn, TypeVar

T = TypeVar("T")


class _ExtensionLookup:
    """Fetching extensions by type: what ``Extensions`` and ``ReadOnlyExtensions`` share."""

    _values: Mapping[type, object]

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
        """A new, changeable ``Extensions`` holding the same values."""
        return Extensions(list(self._values.values()))

    def __repr__(self) -> str:
        names = ", ".join(_type_name(kind) for kind in self._values)
        return f"<{type(self).__name__} [{names}]>"


class Extensions(_ExtensionLookup):
    """Application state shared with every task, stored and fetched by type.

    ``WorkerOptions.add_extension(value)`` calls ``insert(value)``; handlers read it with
    ``ctx.extensions.get(MyState)`` or ``ctx.extensions[MyState]``, through a
    ``ReadOnlyExtensions`` view (``read_only()``).
    """

    def __init__(self, values: Sequence[object] = ()) -> None:
        self._values: dict[type, object] = {}
        self._view: ReadOnlyExtensions | None = None
        for value in values:
            self.insert(value)

    def insert(self, value: object) -> object | None:
        """Store ``value`` under its type; returns the value it replaced, if any."""
        previous = self._values.get(type(value))
        self._values[type(value)] = value
        return previous

    def read_only(self) -> ReadOnlyExtensions:
        """A view of these extensions that cannot change them (one per ``Extensions``)."""
        if self._view is None:
            self._view = ReadOnlyExtensions(self)
        return self._view


class ReadOnlyExtensions(_ExtensionLookup):
    """What a job sees of the worker's extensions: every lookup of ``Extensions``, no way to
    add, replace or remove one, so no job changes what another job sees.

    The values are the application's own objects, shared by every job: the view does not
    make them immutable (a job may still call their methods or set their attributes).
    """

    __slots__ = ("_values",)

    def __init__(self, source: Extensions | ReadOnlyExtensions) -> None:
        # A live read-only window on the source's table: never a second copy to keep in step.
        object.__setattr__(self, "_values", MappingProxyType(source._values))

    def read_only(self) -> ReadOnlyExtensions:
        return self

    def insert(self, value: object) -> NoReturn:
        raise TypeError(_read_only("insert"))

    def __setitem__(self, kind: object, value: object) -> NoReturn:
        raise TypeError(_read_only("item assignment"))

    def __delitem__(self, kind: object) -> NoReturn:
        raise TypeError(_read_only("item deletion"))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise TypeError(_read_only("attribute assignment"))

    def __delattr__(self, name: str) -> NoReturn:
        raise TypeError(_read_only("attribute deletion"))


def _read_only(what: str) -> str:
    return (
        f"ReadOnlyExtensions does not support {what}: a job sees the worker's extensions "
        "read-only; add them before the worker starts, with WorkerOptions.add_extension(value)"
    )


def _type_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"
