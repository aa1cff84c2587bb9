"""The public counters' rows: who counts once for which creator or thing.

A counter is the number of distinct people who paid a creator (or a thing),
counted when read: one `counter_people` row per (subject, person), written
with ON CONFLICT DO NOTHING, so no popular subject's row is a lock every
settlement queues on.

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

KINDS = {"creator": b"c", "thing": b"t"}


def subject_key(kind: str, subject: str) -> bytes:
    return KINDS[kind] + hashlib.sha256(subject.encode()).digest()[:15]


def person_key(account: str) -> int:
    return int.from_bytes(hashlib.sha256(account.encode()).digest()[:8], "big", signed=True)


def rows(counted: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """`counter_people` rows for (kind, subject, account) triples, once each,
    in key order (concurrent inserts then take the index's pages in order)."""
    keys = {(subject_key(kind, subject), person_key(account)) for kind, subject, account in counted}
    return [{"subject": s, "person": p} for s, p in sorted(keys)]
