"""The native messaging host: the browser starts it, it relays to the daemon.

The browser starts this program when the extension calls
`runtime.connectNative("app.mecene.daemon")`, and only for the extension IDs
its manifest lists (daemon/nativeinstall.py writes them). It reads the
browser's frames on stdin, checks each one (daemon/frames.py), and relays it
to the running daemon over the Unix socket of the data directory (0600 in a
0700 directory: only the person's own user can open it); the daemon's
answers come back on stdout. Nothing goes over TCP.

- A bad frame gets an error answer on the channel; a stream that cannot be
  read on (a length past a browser's limit, a truncated frame) ends the host.
- The daemon not running: each message is answered `daemon_down`, with the
  command that starts it; the host tries again at the next message.
- The daemon going away while connected, or the browser closing the port
  (stdin at its end): the host exits, and nothing is left running.

Standard library only, blocking reads in two threads, no asyncio: the
browser starts the host on the first message after its worker wakes, and
that start is on a flattr's path (bench/channel.py measures it).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from . import frames
from .files import DataDir, default_data_dir, is_private

HOST_NAME = "app.mecene.daemon"
DOWN = (
    "The Mécène daemon is not running: start it with `mecene run` "
    "(or `mecene autostart enable` to start it at login)."
)


class Relay:
    def __init__(self, socket_path: Path, out: BinaryIO) -> None:
        self.socket_path = socket_path
        self.out = out
        self.daemon: socket.socket | None = None
        self._lock = threading.Lock()  # one frame at a time on stdout

    def write(self, raw: bytes) -> None:
        with self._lock:
            self.out.write(frames.HEADER.pack(len(raw)) + raw)
            self.out.flush()

    def answer(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(frames.encode(message))
            self.out.flush()

    def connect(self) -> bool:
        if self.daemon is not None:
            return True
        if not is_private(self.socket_path.parent):
            return False  # a directory someone else could have put a socket in
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            return False
        self.daemon = sock
        threading.Thread(target=self._from_daemon, args=(sock,), daemon=True).start()
        return True

    def _from_daemon(self, sock: socket.socket) -> None:
        """The daemon's answers, to the browser as they come; the host ends with
        the daemon's connection (a new host finds the daemon that replaces it)."""
        stream = sock.makefile("rb")
        try:
            while True:
                raw = frames.read_frame(stream.read, frames.MAX_TO_BROWSER)
                if raw is None:
                    break
                self.write(raw)
        except (frames.FrameError, OSError):
            pass
        os._exit(0)  # the main thread is blocked reading the browser: end it all

    def relay(self, raw: bytes) -> None:
        try:
            message = frames.decode(raw)
        except frames.FrameError as exc:
            self.answer(frames.error(None, exc.code, str(exc)))
            return
        if not self.connect():
            self.answer(frames.error(message.get("id"), "daemon_down", DOWN, 503))
            return
        assert self.daemon is not None
        self.daemon.sendall(frames.HEADER.pack(len(raw)) + raw)


def serve(socket_path: Path, inp: BinaryIO, out: BinaryIO) -> int:
    relay = Relay(socket_path, out)
    while True:
        try:
            raw = frames.read_frame(inp.read)
        except frames.FrameError as exc:
            relay.answer(frames.error(None, exc.code, str(exc)))
            if exc.fatal:
                return 0
            continue
        if raw is None:
            return 0  # the browser closed the port
        try:
            relay.relay(raw)
        except OSError:
            return 0  # the daemon went away mid-send: its reader ends the host


def main() -> int:
    # The browser passes the caller's origin (Chromium) or the manifest's path
    # and the extension's ID (Firefox): the manifest already limits who may
    # start the host, so they are not needed here.
    os.umask(0o077)
    data = DataDir(default_data_dir())
    try:
        return serve(data.channel, sys.stdin.buffer, sys.stdout.buffer)
    except (KeyboardInterrupt, BrokenPipeError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
