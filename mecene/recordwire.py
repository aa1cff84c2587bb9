"""Encrypted records on the wire (DESIGN.md, "The wallet over a machine's life").

A daemon keeps, at its hub, what it alone holds and money depends on, as
records only its seed can open (daemon/records.py seals them). The hub sees
an account, an opaque slot, a version and ciphertext of one of a few fixed
sizes, so it learns neither which record changed nor how much is in it.

    PUT /v1/records/{slot}   {version, data}   -> {slot, version}
    GET /v1/records/{slot}                     -> {slot, version, data}

`slot` is 64 hex digits (an HMAC of the record's name under a key derived
from the seed); `data` is base64url of nonce || AES-GCM ciphertext, exactly
one of SIZES bytes long; `version` grows with each write of a slot, so an
old copy of a wallet cannot overwrite what a newer one kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .encoding import unb64u

# The lengths of a sealed record (nonce + ciphertext + tag), smallest first:
# a record is padded up to the first that holds it.
SIZES = (4 * 1024, 64 * 1024, 1024 * 1024)
# Slots one account may fill: a record bigger than the largest size takes
# several, and each person has two records (daemon/records.py).
MAX_SLOTS = 16
MAX_VERSION = 2**62
SLOT_RE = re.compile(r"^[0-9a-f]{64}$")


class RecordError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = "invalid"


@dataclass(frozen=True)
class RecordPut:
    version: int
    data: bytes


def slot(text: str) -> str:
    if not SLOT_RE.match(text):
        raise RecordError("a record's slot is 64 lowercase hex digits")
    return text


def put(body: dict[str, Any]) -> RecordPut:
    """Parse a `PUT /v1/records/{slot}` body."""
    if set(body) != {"version", "data"}:
        raise RecordError("a record is {version, data}")
    version, data = body["version"], body["data"]
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise RecordError("a record's version is a whole number from 1")
    if not isinstance(data, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", data):
        raise RecordError("a record's data is base64url")
    raw = unb64u(data)
    if len(raw) not in SIZES:
        sizes = ", ".join(str(n) for n in SIZES)
        raise RecordError(f"a record is exactly one of {sizes} bytes (padded)")
    return RecordPut(version, raw)
