"""Sealing a record into slots and opening it again (pure: no I/O).

A record (a JSON object) is compressed, cut into parts that fit the largest
sealed size, and each part padded to the smallest of `recordwire.SIZES` that
holds it and sealed with AES-GCM under a key derived from the seed (HKDF-SHA256,
"mecene records v1 key"). Its slot at the hub is an HMAC of the record's
name, generation and part under another derived key ("mecene records v1
slots"), so the hub cannot tell the records apart. The associated data binds
each part to the account and its slot: the hub cannot move one to another
slot or account unnoticed.

Writes alternate between two generations of slots (by the version's
parity): a write cut short leaves the other generation whole, and a reader
takes the newest generation whose parts are all there and agree.

    plaintext of a part = version (8) | part (2) | parts (2) | length (4) | bytes | zero padding
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mecene import recordwire

KEY_LABEL = b"mecene records v1 key"
SLOT_LABEL = b"mecene records v1 slots"
NONCE = 12
TAG = 16
HEADER = struct.Struct(">QHHI")
PART_MAX = recordwire.SIZES[-1] - NONCE - TAG - HEADER.size
# Parts of one record: two records, two generations each, fit the hub's slots.
MAX_PARTS = recordwire.MAX_SLOTS // 4
GENERATIONS = 2


class RecordDamaged(ValueError):
    """A sealed part that does not open: another key, another slot, or changed."""


class RecordTooLarge(ValueError):
    """A record over MAX_PARTS parts once compressed."""


@dataclass(frozen=True)
class Part:
    version: int
    index: int
    parts: int
    data: bytes


def _derive(seed: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(seed)


class RecordKeys:
    """The keys of one wallet's records, from its seed and its account."""

    def __init__(self, seed: bytes, account: str) -> None:
        self._aead = AESGCM(_derive(seed, KEY_LABEL))
        self._slots = _derive(seed, SLOT_LABEL)
        self.account = account

    @classmethod
    def of(cls, key: bytes, slots: bytes, account: str) -> RecordKeys:
        """The same keys, from the two derived secrets (a computer that joined
        with a code holds those, not the seed: daemon/devices.py)."""
        keys = cls.__new__(cls)
        keys._aead, keys._slots, keys.account = AESGCM(key), slots, account
        return keys

    @staticmethod
    def secrets(seed: bytes) -> tuple[bytes, bytes]:
        """(records key, slots key) of a seed."""
        return _derive(seed, KEY_LABEL), _derive(seed, SLOT_LABEL)

    def slot(self, name: str, generation: int, index: int) -> str:
        message = f"{name}/{generation}/{index}".encode()
        return hmac.new(self._slots, message, hashlib.sha256).hexdigest()

    def _aad(self, slot: str) -> bytes:
        return f"mecene record|{self.account}|{slot}".encode()

    def seal(self, name: str, version: int, record: dict[str, Any]) -> list[tuple[str, bytes]]:
        """(slot, sealed bytes) of each part of `record` at `version`, the
        first part last: it is what a reader looks at first."""
        packed = zlib.compress(
            json.dumps(record, sort_keys=True, separators=(",", ":")).encode(), 9
        )
        chunks = [packed[i : i + PART_MAX] for i in range(0, len(packed), PART_MAX)] or [b""]
        if len(chunks) > MAX_PARTS:
            raise RecordTooLarge(
                f"the {name} record is {len(packed)} bytes compressed; "
                f"at most {MAX_PARTS * PART_MAX} are kept at the hub"
            )
        generation = version % GENERATIONS
        out = []
        for index, chunk in enumerate(chunks):
            body = HEADER.pack(version, index, len(chunks), len(chunk)) + chunk
            size = next(s for s in recordwire.SIZES if NONCE + TAG + len(body) <= s)
            padded = body + bytes(size - NONCE - TAG - len(body))
            slot = self.slot(name, generation, index)
            nonce = os.urandom(NONCE)
            out.append((slot, nonce + self._aead.encrypt(nonce, padded, self._aad(slot))))
        return out[1:][::-1] + out[:1]

    def open(self, slot: str, sealed: bytes) -> Part:
        try:
            plain = self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], self._aad(slot))
        except (InvalidTag, ValueError):
            raise RecordDamaged("a record at the hub does not open with this wallet") from None
        version, index, parts, length = HEADER.unpack_from(plain)
        data = plain[HEADER.size : HEADER.size + length]
        if len(data) != length or index >= parts or parts > MAX_PARTS:
            raise RecordDamaged("a record at the hub is malformed")
        return Part(version, index, parts, data)


def join(parts: list[Part]) -> dict[str, Any]:
    """The record from all its parts (of one version, in order)."""
    packed = b"".join(p.data for p in sorted(parts, key=lambda p: p.index))
    try:
        record = json.loads(zlib.decompress(packed))
    except (zlib.error, ValueError):
        raise RecordDamaged("a record at the hub does not decompress") from None
    if not isinstance(record, dict):
        raise RecordDamaged("a record at the hub is not an object")
    return record
