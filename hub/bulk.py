"""Many rows in one statement.

A list of parameters given to `conn.execute` runs one statement per row
(asyncpg's executemany); at the month-start burst PostgreSQL then spends its
time starting statements. On PostgreSQL these write all the rows with one
statement whose text never changes, whatever their number — the columns
passed as arrays and `unnest`ed — so it is prepared once per connection
(a multi-row VALUES would be a new statement, parsed and planned, for every
row count). On SQLite, in the same process, a statement costs little: the
plain executemany.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Integer,
    LargeBinary,
    Table,
    any_,
    bindparam,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def _pg_type(table: Table, name: str) -> str:
    kind = table.c[name].type
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, LargeBinary):
        return "bytea"
    return "text"


async def insert_many(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore: bool = False,
    returning: Sequence[str] = (),
) -> list[Any]:
    """INSERT `rows` (all with the same keys); `ignore`: ON CONFLICT DO NOTHING.
    Returns the `returning` columns of the rows written (none if not asked)."""
    if not rows:
        return []
    names = list(rows[0])
    if not {*names, *returning} <= set(table.c.keys()):
        wrong = sorted({*names, *returning} - set(table.c.keys()))
        raise ValueError(f"not columns of {table.name}: {wrong}")
    if conn.dialect.name != "postgresql":
        stmt: Any = sqlite.insert(table).on_conflict_do_nothing() if ignore else table.insert()
        if returning:
            stmt = stmt.returning(*(table.c[n] for n in returning))
        result = await conn.execute(stmt, [dict(r) for r in rows])
        return list(result) if returning else []
    arrays = ", ".join(f"CAST(:{n} AS {_pg_type(table, n)}[])" for n in names)
    conflict = " ON CONFLICT DO NOTHING" if ignore else ""
    # Built from the table's own column names (checked above), never from a request.
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays})"  # noqa: S608
    sql += conflict
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    result = await conn.execute(text(sql), {n: [r[n] for r in rows] for n in names})
    return list(result) if returning else []


async def update_many(
    conn: AsyncConnection, table: Table, key: str, updates: Sequence[tuple[Any, Mapping[str, Any]]]
) -> None:
    """Set each row's values by its `key` column, one statement per shape of
    values (the rows that set the same columns)."""
    by_shape: defaultdict[tuple[str, ...], list[tuple[Any, Mapping[str, Any]]]] = defaultdict(list)
    for row_key, new in updates:
        by_shape[tuple(sorted(new))].append((row_key, new))
    for shape, group in by_shape.items():
        if not {key, *shape} <= set(table.c.keys()):
            raise ValueError(f"not columns of {table.name}: {shape}")
        if conn.dialect.name != "postgresql":
            await conn.execute(
                update(table)
                .where(table.c[key] == bindparam("row_key"))
                .values({n: bindparam(f"new_{n}") for n in shape}),
                [{"row_key": k, **{f"new_{n}": v for n, v in new.items()}} for k, new in group],
            )
            continue
        cols = [key, *shape]
        arrays = ", ".join(f"CAST(:a_{c} AS {_pg_type(table, c)}[])" for c in cols)
        sets = ", ".join(f"{c} = v.{c}" for c in shape)
        source = f"unnest({arrays}) AS v({', '.join(cols)})"
        sql = f"UPDATE {table.name} SET {sets} FROM {source} WHERE {table.name}.{key} = v.{key}"  # noqa: S608
        params = {f"a_{key}": [k for k, _n in group]}
        params.update({f"a_{c}": [new[c] for _k, new in group] for c in shape})
        await conn.execute(text(sql), params)


def one_of(conn: AsyncConnection, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values`. On PostgreSQL `column = ANY(array)`: one bound
    array, so the statement's text is the same whatever the number of values
    (an IN list of a payout chunk's thousands of keys cost more to build,
    bind by bind, than to run, and was parsed anew for every length)."""
    values = list(values)
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
