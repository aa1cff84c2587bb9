"""The public counters' rows: who counts once for which creator or thing.

A counter is the number of distinct people who paid a creator (or a thing),
counted when read: one `counter_people` row per (subject, person), written
with ON CONFLICT DO NOTHING, so no popular subject's row is a lock every
settlement queues on.

A settlement's people are counted by the payout run that routes it, with one
statement per chunk inside the database (`count_routed`): written at
acceptance, from the hub process, one settlement's forty rows cost about
1 ms of CPU more per settlement in all (bench/hub_scale.py, docs/SCALE.md). A
direct gift counts its giver at once (hub/admission.py, `rows`). The keys
are made by the same rule in Python and in SQL (`SubjectKey`, `PersonKey`;
on SQLite, functions hub/db.py registers).

Both columns are fixed-width bytes and integers, not text (migration 0014):
up to forty rows a settlement made these the largest part of PostgreSQL's
work at acceptance, each entered into a three-column text primary key
compared through the cluster's collation (docs/SCALE.md).

- `subject`: the kind's letter and the first 15 bytes of the SHA-256 of the
  subject (a creator key or a canonical URL). 120 bits: two of a billion
  subjects share a key with a probability below 10⁻¹⁸.
- `person`: the first 8 bytes of the SHA-256 of the account, as a signed
  64-bit integer. Two of a subject's million people share one with a
  probability below 3·10⁻⁸, and the counter would then be one short.

Hashing hides nothing from the hub, which knows every account and can hash
any URL: it keeps the rows narrow, nothing more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from . import admit, bulk, ledger, routeset
from .schema import counter_people, settlements

KINDS = {"creator": "c", "thing": "t"}


def subject_of(letter: str, subject: str) -> bytes:
    return letter.encode() + hashlib.sha256(subject.encode()).digest()[:15]


def subject_key(kind: str, subject: str) -> bytes:
    return subject_of(KINDS[kind], subject)


def person_key(account: str) -> int:
    return int.from_bytes(hashlib.sha256(account.encode()).digest()[:8], "big", signed=True)


# The same keys in SQL. SQLite has no SHA-256: hub/db.py registers these two
# names, backed by the functions above, on each of its connections.
class SubjectKey(FunctionElement[bytes]):
    type = LargeBinary()
    name = "mecene_subject_key"
    inherit_cache = True


class PersonKey(FunctionElement[int]):
    type = BigInteger()
    name = "mecene_person_key"
    inherit_cache = True


@compiles(SubjectKey)
@compiles(PersonKey)
def _registered(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    """SQLite: the function of that name hub/db.py registered."""
    args = ", ".join(compiler.process(c, **kw) for c in element.clauses)
    return f"{element.name}({args})"


@compiles(SubjectKey, "postgresql")
def _subject_pg(element: SubjectKey, compiler: SQLCompiler, **kw: Any) -> str:
    letter, subject = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"(convert_to({letter}, 'UTF8')"
        f" || substring(sha256(convert_to({subject}, 'UTF8')) FROM 1 FOR 15))"
    )


@compiles(PersonKey, "postgresql")
def _person_pg(element: PersonKey, compiler: SQLCompiler, **kw: Any) -> str:
    (account,) = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"CAST(CAST('x' || left(encode(sha256(convert_to({account}, 'UTF8')), 'hex'), 16)"
        " AS bit(64)) AS bigint)"
    )


# The chunk's givers whose settlement gave that month (`count_routed`).
givers = Table(
    "payout_givers",
    MetaData(),
    Column("account", String(64), primary_key=True),
    Column("month", String(7), primary_key=True),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
G = givers


async def count_routed(conn: AsyncConnection) -> None:
    """Count the givers of the rows a payout chunk has just routed (this
    connection's `routeset.routed`), once per creator and thing: settlements'
    money only (tokens and gifts count otherwise), of people who gave that
    month (`admit.gives`: free settlements raise no counter), for what they
    gave money to.

    The settlements are looked up by their givers, not joined whole: a join
    let the planner hash the whole `settlements` table for every chunk (at
    1,000,000 accounts, 540 ms of the statement's 722 ms of reading)."""
    R = routeset.routed
    paying = and_(R.c.transfer_id.is_(None), R.c.cents > 0)
    pairs = set((await conn.execute(select(R.c.giver, R.c.month).where(paying).distinct())).all())
    await routeset.emptied(conn, G)
    if not pairs:
        return
    S = settlements
    found = await conn.execute(
        select(S.c.account, S.c.month).where(
            bulk.one_of(conn, S.c.account, sorted({g for g, _m in pairs})),
            admit.gives_sql(S.c.spend_cents),
        )
    )
    gave = [{"account": a, "month": m} for a, m in found if (a, m) in pairs]
    if not gave:
        return
    await bulk.insert_many(conn, G, gave)
    # Each giver's key once per row: the CTE is read twice, so both engines
    # compute it once.
    paid_rows = (
        select(R.c.creator, R.c.url, PersonKey(R.c.giver).label("person"))
        .select_from(R.join(G, and_(G.c.account == R.c.giver, G.c.month == R.c.month)))
        .where(paying)
        .cte("paid_rows")
    )
    each = union_all(
        select(
            SubjectKey(literal(KINDS["creator"]), paid_rows.c.creator).label("subject"),
            paid_rows.c.person,
        ),
        select(
            SubjectKey(literal(KINDS["thing"]), paid_rows.c.url).label("subject"),
            paid_rows.c.person,
        ).where(paid_rows.c.url.is_not(None)),
    ).subquery("each")
    # In key order, as concurrent inserts then take the index's pages; WHERE
    # true: SQLite reads an ON CONFLICT after a bare FROM as a join's ON.
    rows = (
        select(each.c.subject, each.c.person)
        .distinct()
        .where(true())
        .order_by(each.c.subject, each.c.person)
    )
    await conn.execute(
        ledger.insert_ignore(conn, counter_people).from_select(["subject", "person"], rows)
    )


def rows(counted: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """`counter_people` rows for (kind, subject, account) triples, once each,
    in key order (concurrent inserts then take the index's pages in order)."""
    keys = {(subject_key(kind, subject), person_key(account)) for kind, subject, account in counted}
    return [{"subject": s, "person": p} for s, p in sorted(keys)]
