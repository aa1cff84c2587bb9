"""The protocol's encodings: canonical JSON and base64url.

`canonical(doc)` is RFC 8785 (the JSON Canonicalization Scheme) for the
values the protocol's documents hold — objects with ASCII keys, strings,
integers, booleans and null: keys sorted, no white space, UTF-8, strings
escaped as JCS escapes them (Python's encoder writes the same escapes for
these). A float is refused: money is integer cents, and JCS's number form is
not Python's.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def canonical(doc: Any) -> bytes:
    _no_floats(doc)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _no_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("canonical JSON here holds no floats (money is integer cents)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError("canonical JSON keys here are ASCII strings")
            _no_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _no_floats(item)


def b64u(raw: bytes) -> str:
    """base64url without padding (RFC 4648, section 5)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
