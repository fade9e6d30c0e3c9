"""Result rows read the way gw's code reads an ``asyncpg.Record``, from any driver."""

from __future__ import annotations

from collections.abc import Iterable, KeysView, Sequence
from typing import Any


class Record:
    """One row: by column name (``row["id"]``), by position or slice (``row[:16]``),
    ``keys()`` in column order."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: tuple[Any, ...], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> KeysView[str]:
        return self._index.keys()

    def get(self, key: str, default: Any = None) -> Any:
        at = self._index.get(key)
        return default if at is None else self._values[at]

    def __repr__(self) -> str:
        pairs = zip(self._index, self._values, strict=True)
        fields = " ".join(f"{name}={value!r}" for name, value in pairs)
        return f"<Record {fields}>"


def records(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[Record]:
    """Records from a driver's rows (tuples, lists, or mappings in column order)."""
    index = {name: at for at, name in enumerate(columns)}
    result = []
    for row in rows:
        values = tuple(row.values()) if isinstance(row, dict) else tuple(row)
        result.append(Record(values, index))
    return result
