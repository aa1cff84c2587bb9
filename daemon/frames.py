"""The browsers' channel framing (DESIGN.md, "The browser's channel").

Browsers frame native messages as a 32-bit length in the machine's byte
order, then that many bytes of UTF-8 JSON. The native messaging host
(daemon/nativehost.py) reads them from the browser and the daemon's channel
(daemon/channel.py) reads the same frames from the host: one reader, here,
for both. Standard library only, and no asyncio: the host starts on the first
message after the browser's worker wakes, and must start fast.

The limits: a browser sends the host at most 64 MiB in one message
(Chromium; Firefox allows more, we do not); the host may send the browser
at most 1 MiB. Mécène's own requests are far smaller: a message over
MAX_MESSAGE is answered with an error and skipped, one whose length is past
what any browser sends means the stream is not a browser's, and ends it.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
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


def frame_length(header: bytes, limit: int) -> tuple[int, bool]:
    """The frame's length from its header, and whether it is to be skipped
    (over `limit`, within what a browser sends). FrameError `bad_length`
    (fatal) past that."""
    (length,) = HEADER.unpack(header)
    if length > MAX_FROM_BROWSER:
        raise FrameError(
            "bad_length", f"a frame of {length} bytes is more than a browser sends", fatal=True
        )
    return length, length > limit


def too_large(limit: int) -> FrameError:
    return FrameError("too_large", f"a message is at most {limit} bytes; it was skipped")


def truncated() -> FrameError:
    return FrameError("truncated", "the stream ended inside a frame", fatal=True)


def read_frame(read: Callable[[int], bytes], limit: int = MAX_MESSAGE) -> bytes | None:
    """The next frame's bytes from a blocking `read(n)` (which returns fewer
    bytes only at the stream's end); None when the stream ends between frames.

    Raises FrameError: `truncated` (the stream ended inside a frame; fatal),
    `too_large` (skipped whole, up to what a browser may send), `bad_length`
    (past that: fatal)."""
    header = read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise truncated()
    length, skip = frame_length(header, limit)
    if skip:
        left = length
        while left:
            chunk = read(min(left, SKIP_CHUNK))
            if not chunk:
                raise truncated()
            left -= len(chunk)
        raise too_large(limit)
    body = read(length)
    if len(body) < length:
        raise truncated()
    return body


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
