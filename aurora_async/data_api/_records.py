"""``Record``: one result row, usable as a tuple and as a read-only mapping, like asyncpg's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload


class Record:
    """A result row. ``rec[0]`` and ``rec["name"]`` both work; ``len``, iteration (over the values, as
    with a tuple and with asyncpg), ``keys()``, ``values()``, ``items()``, ``get()``, ``"name" in rec``,
    ``dict(rec)`` and ``tuple(rec)`` too. Equal to a tuple of the same values. When two columns share
    a name, the name gives the first."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: Mapping[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = tuple(values)

    @overload
    def __getitem__(self, key: int | str) -> Any: ...

    @overload
    def __getitem__(self, key: slice) -> tuple[Any, ...]: ...

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                raise KeyError(f"no column {key!r} (columns: {', '.join(self._index)})") from None
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def keys(self) -> Iterator[str]:
        """Column names, in order (a repeated name once)."""
        return iter(self._index)

    def values(self) -> Iterator[Any]:
        return iter(self._values)

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, self._values[i]) for name, i in self._index.items())

    def get(self, key: str, default: Any = None) -> Any:
        i = self._index.get(key)
        return default if i is None else self._values[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self._values == other._values
        if isinstance(other, tuple):
            return self._values == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        names = {i: name for name, i in self._index.items()}
        fields = " ".join(f"{names.get(i, i)}={v!r}" for i, v in enumerate(self._values))
        return f"<Record {fields}>"


def column_index(names: Sequence[str]) -> dict[str, int]:
    """Name -> position, the first column of a name winning."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return index
