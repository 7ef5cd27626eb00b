"""Typed helpers over sqlite-utils tables, shared by the store's modules.

The store reaches its tables with ``db.table(name)`` (a ``Table``; ``db[name]`` is typed
``Table | View`` although the schema has no views), and reads a new row's id with
``inserted_id`` (sqlite-utils types ``last_pk`` as ``Any | None``).
"""

from __future__ import annotations

from sqlite_utils.db import Table


def inserted_id(table: Table) -> int:
    """The integer primary key of the row the last ``insert`` on ``table`` wrote."""
    pk = table.last_pk
    if pk is None:
        raise TypeError(f"sqlite-utils reported no primary key for the row inserted into {table.name}.")
    return int(pk)
