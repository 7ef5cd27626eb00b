"""A CSV, TSV or JSON Lines row kept for the export, in a third of a dict's memory.

Every kept row's record stays in memory until the export writes it back in the user's own shape.
As a dict, a three-column row costs 184 bytes before its values; a million short rows (a 71 MB
CSV) then took 758 MiB to load, over issue 19's bound of 4x the file size + 400 MB. A row of
one file's columns (a JSON Lines row: of one key set) is instead an instance of a class made for
that header, holding its values in ``__slots__`` (56 bytes for three columns), and reads like the dict it replaces: ``rec["answer"]``,
``rec.get(...)``, ``list(rec)``, ``rec == {...}``. It is read-only; ``dict(rec)`` is the copy to
change. ``json_default`` lets ``json.dumps`` write it as the object it stands for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator, Optional, Sequence


class Record(Mapping):
    """The read-only mapping face shared by every header's row class (``record_type``)."""

    __slots__ = ()
    _columns: tuple[str, ...] = ()
    _index: dict[str, int] = {}
    _cells: tuple[Any, ...] = ()  # the member descriptors of the header's slots, in column order

    def __getitem__(self, key: str) -> Optional[str]:
        i = self._index.get(key)
        if i is None:
            raise KeyError(key)
        return self._cells[i].__get__(self)

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return repr(dict(self))

    def __reduce__(self) -> tuple:
        # Pickled and deep-copied as the plain dict it stands for: the class exists only in this process.
        return (dict, (dict(self),))


def record_type(columns: Sequence[str]) -> Callable[[Sequence[Optional[str]]], Record]:
    """A maker of rows for one header: ``make(values)`` with one value per column, in order."""
    names = tuple(columns)
    slots = tuple(f"_c{i}" for i in range(len(names)))
    index = {name: i for i, name in enumerate(names)}
    cls: type[Record] = type("CsvRecord", (Record,), {"__slots__": slots, "_columns": names, "_index": index})
    cells = tuple(cls.__dict__[s] for s in slots)
    cls._cells = cells
    new = object.__new__

    def make(values: Sequence[Optional[str]]) -> Record:
        rec: Record = new(cls)
        for cell, value in zip(cells, values):
            cell.__set__(rec, value)
        return rec

    return make


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: a row as its object, anything else as its text."""
    if isinstance(value, Record):
        return dict(value)
    return str(value)
