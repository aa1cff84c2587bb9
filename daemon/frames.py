"""The browsers' channel framing (DESIGN.md, "The browser's channel").

Browsers frame native messages as a 32-bit length in the machine's byte
order, then that many bytes of UTF-8 JSON. The native messaging host
(daemon/nativehost.py) reads them from the browser and the daemon's channel
(daemon/channel.py) reads the same frames from the host: one reader, here,
for both. Standard library only: the host starts on every connection and
must start fast.

The limits: a browser sends the host at most 64 MiB in one message
(Chromium; Firefox allows more, we do not); the host may send the browser
at most 1 MiB. Mécène's own requests are far smaller: a message over
MAX_MESSAGE is answered with an error and skipped, one whose length is past
what any browser sends means the stream is not a browser's, and ends it.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from typing import Any

HEADER = struct.Struct("=I")  # native byte order, as the browsers write it
MAX_MESSAGE = 96 * 1024  # a request: 64 KiB of body and its envelope
MAX_FROM_BROWSER = 64 * 1024 * 1024
MAX_TO_BROWSER = 1024 * 1024
SKIP_CHUNK = 64 * 1024


class FrameError(Exception):
    """A frame that cannot be used. `fatal`: the stream cannot go on (the next
    frame's start is unknown); otherwise the frame was skipped whole."""

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal


def encode(message: Any) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_TO_BROWSER:
        raise ValueError("a message to the browser is at most 1 MiB")
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_MESSAGE) -> bytes | None:
    """The next frame's bytes; None when the stream ends between frames.

    Raises FrameError: `truncated` (the stream ended inside a frame; fatal),
    `too_large` (skipped whole, up to what a browser may send), `bad_length`
    (past that: fatal)."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError(
            "truncated", "the stream ended inside a frame's length", fatal=True
        ) from None
    (length,) = HEADER.unpack(header)
    if length > MAX_FROM_BROWSER:
        raise FrameError(
            "bad_length", f"a frame of {length} bytes is more than a browser sends", fatal=True
        )
    if length > limit:
        left = length
        try:
            while left:
                left -= len(await reader.readexactly(min(left, SKIP_CHUNK)))
        except asyncio.IncompleteReadError:
            raise FrameError("truncated", "the stream ended inside a frame", fatal=True) from None
        raise FrameError("too_large", f"a message is at most {limit} bytes; it was skipped")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise FrameError("truncated", "the stream ended inside a frame", fatal=True) from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def decode(raw: bytes) -> dict[str, Any]:
    """A frame's message: a JSON object (FrameError `bad_json` otherwise)."""
    try:
        text = raw.decode("utf-8")
        value = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FrameError("bad_json", "a message is UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise FrameError("bad_json", "a message is a JSON object")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise FrameError("bad_json", "a message holds an unpaired surrogate") from None
    return value


def error(message_id: Any, code: str, text: str, status: int = 400) -> dict[str, Any]:
    """An answer that is an error, as the local API writes errors."""
    return {"id": message_id, "status": status, "body": {"error": code, "message": text}}
