"""Signed requests between a daemon and the hub, and the hub's receipts.

Every request a daemon makes carries four headers:

    Mecene-Account:   the wallet's Ed25519 public key (base64url, 43 characters)
    Mecene-Timestamp: Unix seconds when it was signed
    Mecene-Nonce:     16 random bytes (base64url), never used twice by one account
    Mecene-Signature: Ed25519 over request_payload(...) (base64url)

The payload binds the method, the path with its query, the time, the nonce and
the SHA-256 of the body, so a captured request cannot be changed, sent to
another route, or replayed (the hub keeps each nonce for longer than the
accepted clock skew). The daemon and the hub both use this module.

A computer that is one of the account's devices (DESIGN.md, "Devices")
signs with its own key instead, named in a fifth header, and its payload
binds the account too; the hub takes it only while that device is the
account's and not removed:

    Mecene-Device:    the device's Ed25519 public key (base64url)
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .encoding import b64u, unb64u

SCHEME = b"mecene-hub-v1"
MAX_SKEW_SECONDS = 300
NONCE_TTL_SECONDS = 2 * MAX_SKEW_SECONDS + 60
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SIG_RE = re.compile(r"^[A-Za-z0-9_-]{86}$")


class SignatureError(Exception):
    """A request or document whose signature does not hold; `code` names why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def public_key(account: str) -> Ed25519PublicKey:
    """The key an account string names; SignatureError if it names none."""
    if not isinstance(account, str) or not _ACCOUNT_RE.match(account):
        raise SignatureError("bad_account", "an account is a 43-character base64url key")
    try:
        return Ed25519PublicKey.from_public_bytes(unb64u(account))
    except (ValueError, binascii.Error):
        raise SignatureError("bad_account", "not an Ed25519 public key") from None


def verify(account: str, message: bytes, signature: str) -> None:
    """Raise SignatureError unless `signature` is `account`'s over `message`."""
    key = public_key(account)
    if not isinstance(signature, str) or not _SIG_RE.match(signature):
        raise SignatureError("bad_signature", "a signature is 86 characters of base64url")
    try:
        key.verify(unb64u(signature), message)
    except (InvalidSignature, ValueError, binascii.Error):
        raise SignatureError("bad_signature", "the signature does not match") from None


def request_payload(method: str, path_qs: str, ts: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return b"\n".join(
        [
            SCHEME,
            method.upper().encode(),
            path_qs.encode(),
            ts.encode(),
            nonce.encode(),
            digest.encode(),
        ]
    )


def device_payload(payload: bytes, account: str) -> bytes:
    """What a device signs: the request's payload and the account it acts for."""
    return payload + b"\n" + account.encode()


def sign_request(
    account: str,
    sign: Callable[[bytes], str],
    method: str,
    path_qs: str,
    body: bytes,
    now: float,
    device: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request (the daemon's side); with `device`,
    `sign` is that device's key."""
    ts = str(int(now))
    nonce = b64u(secrets.token_bytes(16))
    payload = request_payload(method, path_qs, ts, nonce, body)
    headers = {
        "Mecene-Account": account,
        "Mecene-Timestamp": ts,
        "Mecene-Nonce": nonce,
    }
    if device is not None:
        headers["Mecene-Device"] = device
        payload = device_payload(payload, account)
    headers["Mecene-Signature"] = sign(payload)
    return headers


def encode_body(body: Any) -> bytes:
    """A request's body as sent and signed: compact JSON, or the bytes given
    as they are (a test's hostile body), or nothing."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":")).encode()


def signed_request(
    account: str,
    sign: Callable[[bytes], str],
    method: str,
    path_qs: str,
    body: Any,
    now: float,
    device: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """One signed request to the hub, whoever sends it (the daemon's hub link,
    every test and bench harness): the body's bytes and all its headers,
    `Content-Type` included when there is a body. `path_qs` is the path as the
    hub sees it, with its query.

    >>> raw, headers = signed_request(acct, wallet.sign, "POST", "/v1/x", {"a": 1}, time.time())
    ... # doctest: +SKIP
    """
    raw = encode_body(body)
    headers = {"Content-Type": "application/json"} if raw else {}
    headers.update(sign_request(account, sign, method, path_qs, raw, now, device))
    return raw, headers


def check_request(
    headers: Mapping[str, str], method: str, path_qs: str, body: bytes, now: float
) -> tuple[str, str, int]:
    """Check a request's signature and freshness; (account, nonce, ts).

    The caller must still record the nonce and refuse it if already seen."""
    account, _device, nonce, ts = check_signed(headers, method, path_qs, body, now)
    return account, nonce, ts


def check_signed(
    headers: Mapping[str, str], method: str, path_qs: str, body: bytes, now: float
) -> tuple[str, str | None, str, int]:
    """Check a request's signature and freshness; (account, device or None,
    nonce, ts). The caller must still record the nonce, and check that the
    device is the account's."""
    account = headers.get("Mecene-Account")
    ts = headers.get("Mecene-Timestamp")
    nonce = headers.get("Mecene-Nonce")
    signature = headers.get("Mecene-Signature")
    if not account or not ts or not nonce or not signature:
        raise SignatureError("unsigned", "this route needs a signed request (Mecene-* headers)")
    if not ts.isdigit() or len(ts) > 12:
        raise SignatureError("bad_timestamp", "Mecene-Timestamp is Unix seconds")
    if abs(int(ts) - now) > MAX_SKEW_SECONDS:
        raise SignatureError(
            "stale", f"the request was signed more than {MAX_SKEW_SECONDS} s from the hub's time"
        )
    if not _NONCE_RE.match(nonce):
        raise SignatureError("bad_nonce", "Mecene-Nonce is 16 to 64 characters of base64url")
    payload = request_payload(method, path_qs, ts, nonce, body)
    device = headers.get("Mecene-Device")
    public_key(account)  # the account is a key, whoever signed
    if device is None:
        verify(account, payload, signature)
    else:
        verify(device, device_payload(payload, account), signature)
    return account, device, nonce, int(ts)
