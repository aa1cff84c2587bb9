"""A real `mecene-hub serve` process, and running processes under a faked clock."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mecene import signing
from mecene import time as clock

from .hubkit import Person

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def faketime(offset: int) -> list[str]:
    """A command prefix that runs a program `offset` seconds ahead. `env`
    replaces itself with the program (the `faketime` wrapper would stay its
    parent, and a signal to the wrapper would not reach the program)."""
    if shutil.which("faketime") is None or not LIBFAKETIME.exists():
        raise RuntimeError("faketime is not installed: run scripts/test, which installs it")
    return ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={offset:+d}", "FAKETIME_NO_CACHE=1"]


class HubProcess:
    def __init__(self, data: Path, port: int, prefix: list[str]) -> None:
        self.data, self.port, self.prefix = data, port, prefix
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / "hub.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubProcess:
        argv = [*self.prefix, sys.executable, "-m", "hub", "serve"]
        argv += ["--data-dir", str(self.data), "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/v1", timeout=2):
                    return self
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.1)
        raise AssertionError(f"the hub did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub", *args, "--data-dir", str(self.data)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def call(
        self, person: Person, method: str, path: str, body: Any, offset: int
    ) -> tuple[int, Any]:
        now = time.time() + offset  # the hub's (faked) clock
        raw, headers = signing.signed_request(person.account, person.sign, method, path, body, now)
        req = urllib.request.Request(
            self.url + path, data=raw or None, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:  # its response holds the connection: closed here, not by the GC
                return exc.code, json.loads(exc.read())


# The daemons of these tests live in the last time zone to leave a month,
# UTC−12: their month ends when the hub starts to accept its settlements (a
# month is settled once it has ended in every time zone).
TIME_ZONE = clock.LAST_TIME_ZONE


def offset_to_month_end(after: int) -> tuple[int, str]:
    """(seconds to add to the real clock so that this month, in TIME_ZONE, ends
    `after` seconds from now; this month). The faked time is always ahead of
    the real one."""
    now = dt.datetime.now(dt.UTC)
    month = clock.month_of(now + dt.timedelta(days=1), TIME_ZONE)  # never a day from its end
    boundary = clock.month_ended_everywhere(month)
    offset = int((boundary - dt.datetime.now(dt.UTC)).total_seconds()) - after
    return offset, month


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")
