"""Devices on the wire: one wallet on several computers (DESIGN.md, "Devices").

Each computer of an account has a key of its own, and signs its requests to
the hub with it (mecene/signing.py, `Mecene-Device`). The hub keeps, per
account, which device keys are its own and which were removed; it never
learns a device's name (that travels in the wallet's encrypted records).

    POST   /v1/devices            {device, proof}       -> {device, added}
    GET    /v1/devices                                  -> {devices: [{device, added, removed}]}
    DELETE /v1/devices/{device}                         -> {device, removed}
    PUT    /v1/invites/{id}       {data}                -> {id, expires_at}
    POST   /v1/invites/{id}/accept {device, proof}      -> {account, data}   (unsigned)

`proof` is the device key's signature over `device_message` (or, to accept
an invitation, `accept_message`): a key is added only by whoever holds it.

A new computer joins with a one-time code that another computer of the
account shows. The code is 80 random bits, written as 16 characters of
Crockford's base32 in four groups (XXXX-XXXX-XXXX-XXXX). From it both sides
derive (HKDF-SHA256) the invitation's id at the hub and the key (AES-GCM)
that seals what the new computer needs: the hub sees an id that it cannot
turn back into the code, and ciphertext. An invitation is taken once, within
INVITE_SECONDS, and gone.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import signing
from .encoding import b64u, unb64u

INVITE_SECONDS = 15 * 60
# An invitation holds a seed and a few settings: padded to this size.
INVITE_BYTES = 4096
MAX_DEVICES = 10
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
CODE_LENGTH = 16  # 80 bits
ID_RE = re.compile(r"^[0-9a-f]{64}$")


class DeviceError(ValueError):
    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


# -- the one-time code ------------------------------------------------------------------


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normal_code(text: str) -> str:
    """The code as typed (any case, dashes or spaces, I/L for 1, O for 0)."""
    raw = re.sub(r"[\s-]", "", text.upper()).translate(str.maketrans("ILO", "110"))
    if len(raw) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in raw):
        raise DeviceError(
            f"a device code is {CODE_LENGTH} letters and digits, as XXXX-XXXX-XXXX-XXXX"
        )
    return raw


def _derive(code: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
        normal_code(code).encode()
    )


def invite_id(code: str) -> str:
    return _derive(code, b"mecene invite v1 id").hex()


def _aad(ident: str) -> bytes:
    return f"mecene invite|{ident}".encode()


def seal_invite(code: str, payload: dict[str, Any]) -> bytes:
    """The invitation's contents sealed under the code (padded: the hub
    learns nothing from its size)."""
    plain = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    if len(plain) + 4 > INVITE_BYTES - 28:
        raise DeviceError("an invitation is too large")
    padded = len(plain).to_bytes(4, "big") + plain
    padded += bytes(INVITE_BYTES - 28 - len(padded))
    nonce = os.urandom(12)
    aead = AESGCM(_derive(code, b"mecene invite v1 key"))
    return nonce + aead.encrypt(nonce, padded, _aad(invite_id(code)))


def open_invite(code: str, sealed: bytes) -> dict[str, Any]:
    aead = AESGCM(_derive(code, b"mecene invite v1 key"))
    try:
        plain = aead.decrypt(sealed[:12], sealed[12:], _aad(invite_id(code)))
        length = int.from_bytes(plain[:4], "big")
        payload = json.loads(plain[4 : 4 + length])
    except (InvalidTag, ValueError):
        raise DeviceError("the invitation does not open with this code") from None
    if not isinstance(payload, dict):
        raise DeviceError("the invitation is malformed")
    return payload


# -- proofs that a device holds its key ------------------------------------------------


def device_message(account: str, device: str) -> bytes:
    return f"mecene device v1\n{account}\n{device}".encode()


def accept_message(ident: str, device: str) -> bytes:
    return f"mecene invite accept v1\n{ident}\n{device}".encode()


# -- bodies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceProof:
    device: str
    proof: str


def device_key(text: Any) -> str:
    try:
        signing.public_key(text)
    except signing.SignatureError:
        raise DeviceError("a device is a 43-character base64url Ed25519 key") from None
    return str(text)


def proof_body(body: dict[str, Any]) -> DeviceProof:
    """`{device, proof}` (to add a device, or to accept an invitation)."""
    if set(body) != {"device", "proof"}:
        raise DeviceError("a device is {device, proof}")
    if not isinstance(body["proof"], str):
        raise DeviceError("a device's proof is its key's signature (base64url)")
    return DeviceProof(device_key(body["device"]), body["proof"])


def check_proof(message: bytes, req: DeviceProof) -> None:
    try:
        signing.verify(req.device, message, req.proof)
    except signing.SignatureError:
        raise DeviceError("the proof is not the device key's signature", "bad_signature") from None


def invite_ident(text: str) -> str:
    if not ID_RE.match(text):
        raise DeviceError("an invitation's id is 64 lowercase hex digits")
    return text


def invite_body(body: dict[str, Any]) -> bytes:
    """`{data}`: the sealed invitation, base64url, exactly INVITE_BYTES."""
    if set(body) != {"data"} or not isinstance(body["data"], str):
        raise DeviceError("an invitation is {data}")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", body["data"]):
        raise DeviceError("an invitation's data is base64url")
    raw = unb64u(body["data"])
    if len(raw) != INVITE_BYTES:
        raise DeviceError(f"an invitation is exactly {INVITE_BYTES} bytes (padded)")
    return raw


def encode(data: bytes) -> str:
    return b64u(data)
