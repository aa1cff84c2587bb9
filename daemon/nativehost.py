"""The native messaging host: the browser starts it, it relays to the daemon.

The browser starts this program when the extension calls
`runtime.connectNative("app.mecene.daemon")`, and only for the extension IDs
its manifest lists (daemon/browsers/install.py writes them). It reads the
browser's frames on stdin, checks each one (daemon/frames.py), and relays it
to the running daemon over the Unix socket of the data directory (0600 in a
0700 directory: only the person's own user can open it); the daemon's
answers come back on stdout. Nothing goes over TCP.

- A bad frame gets an error answer on the channel; a stream that cannot be
  read on (a length past a browser's limit, a truncated frame) ends the host.
- The daemon not running: each message is answered `daemon_down`, with the
  command that starts it; the host keeps trying for the next message.
- The daemon going away while connected, or the browser closing the port
  (stdin at its end): the host exits, and nothing is left running.

Standard library only, and little of it: the browser starts the host on the
first message after its worker wakes, and that start is on a flattr's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from . import frames
from .files import DataDir, default_data_dir, is_private

HOST_NAME = "app.mecene.daemon"
DOWN = (
    "The Mécène daemon is not running: start it with `mecene run` "
    "(or `mecene autostart enable` to start it at login)."
)


class Relay:
    def __init__(self, socket_path: Path, out: asyncio.StreamWriter | Any) -> None:
        self.socket_path = socket_path
        self.out = out
        self.daemon: asyncio.StreamWriter | None = None
        self.pump: asyncio.Task[None] | None = None
        self.done = asyncio.Event()

    def answer(self, message: dict[str, Any]) -> None:
        self.out.write(frames.encode(message))

    async def connect(self) -> bool:
        if self.daemon is not None:
            return True
        if not is_private(self.socket_path.parent):
            return False  # a directory someone else could have put a socket in
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError:
            return False
        self.daemon = writer
        self.pump = asyncio.create_task(self._from_daemon(reader))
        return True

    async def _from_daemon(self, reader: asyncio.StreamReader) -> None:
        """The daemon's answers, to the browser as they come; the host ends with
        the daemon's connection (a new host finds the daemon that replaces it)."""
        try:
            while True:
                raw = await frames.read_frame(reader, frames.MAX_TO_BROWSER)
                if raw is None:
                    break
                self.out.write(frames.HEADER.pack(len(raw)) + raw)
                await self.out.drain()
        except (frames.FrameError, OSError):
            pass
        finally:
            self.done.set()

    async def relay(self, raw: bytes) -> None:
        try:
            message = frames.decode(raw)
        except frames.FrameError as exc:
            self.answer(frames.error(None, exc.code, str(exc)))
            return
        if not await self.connect():
            self.answer(frames.error(message.get("id"), "daemon_down", DOWN, 503))
            return
        assert self.daemon is not None
        self.daemon.write(frames.HEADER.pack(len(raw)) + raw)
        await self.daemon.drain()


async def serve(socket_path: Path) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=frames.MAX_MESSAGE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout.buffer
    )
    out = asyncio.StreamWriter(transport, protocol, None, loop)
    relay = Relay(socket_path, out)

    async def from_browser() -> None:
        while True:
            try:
                raw = await frames.read_frame(reader)
            except frames.FrameError as exc:
                relay.answer(frames.error(None, exc.code, str(exc)))
                if exc.fatal:
                    return
                continue
            if raw is None:
                return  # the browser closed the port
            await relay.relay(raw)
            await out.drain()

    browser = asyncio.create_task(from_browser())
    ended = asyncio.create_task(relay.done.wait())
    await asyncio.wait({browser, ended}, return_when=asyncio.FIRST_COMPLETED)
    for task in (browser, ended, relay.pump):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    with contextlib.suppress(Exception):
        await out.drain()
    if relay.daemon is not None:
        relay.daemon.close()
    return 0


def main() -> int:
    # The browser passes the caller's origin (Chromium) or the manifest's path
    # and the extension's ID (Firefox): the manifest already limits who may
    # start the host, so they are not needed here.
    data = DataDir(default_data_dir())
    try:
        return asyncio.run(serve(data.channel))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
