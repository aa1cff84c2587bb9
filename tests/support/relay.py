"""A real Oblivious HTTP relay (HAProxy with deploy/ohttp-relay.cfg) and the
hub operator's own logging front end (HAProxy again, logging each request's
client address, method, path and user agent), as separate processes.

    daemon ──signed calls──────────────────────────▶ front ─▶ hub
    daemon ──encapsulated──▶ relay (from 127.0.0.2) ─▶ front ─▶ hub

On one machine every address is loopback: the relay connects from
127.0.0.2, so the front's log tells the relay's requests from the daemon's.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.constants import free_port
from tests.support.hubs import ROOT, haproxy_path, stop_process, wait_http

RELAY_CFG = ROOT / "deploy" / "ohttp-relay.cfg"
RELAY_SOURCE = "127.0.0.2"
# What a curious hub operator logs at its load balancer: who, when, what.
FRONT_CFG = """
global
    maxconn 1024
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend front
    bind "${FRONT_BIND}"
    log stdout format raw local0
    capture request header User-Agent len 100
    capture request header Mecene-Account len 64
    log-format "%Ts.%ms %ci %HM %HP %ST ua=%hr"
    default_backend hub
backend hub
    server hub "${HUB}"
"""


@dataclass(frozen=True)
class LogLine:
    at: float  # Unix seconds, to the millisecond
    address: str
    method: str
    path: str
    status: int
    user_agent: str  # "{}" when there was none
    account: str  # a signed request's account, else ""


@dataclass
class RelayedHub:
    """The front end and the relay in front of a hub at `hub_port`."""

    data: Path
    hub_port: int
    front_port: int = field(default_factory=free_port)
    relay_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def front_url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    @property
    def relay_url(self) -> str:
        return f"http://127.0.0.1:{self.relay_port}"

    @property
    def front_log(self) -> Path:
        return self.data / "front.log"

    def _haproxy(self, config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [haproxy_path(), "-db", "-f", str(config)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def start(self) -> RelayedHub:
        self.data.mkdir(parents=True, exist_ok=True)
        front = self.data / "front.cfg"
        front.write_text(FRONT_CFG)
        front_proc = self._haproxy(
            front,
            {"FRONT_BIND": f"127.0.0.1:{self.front_port}", "HUB": f"127.0.0.1:{self.hub_port}"},
            self.front_log,
        )
        relay_proc = self._haproxy(
            RELAY_CFG,
            {
                "MECENE_RELAY_BIND": f"127.0.0.1:{self.relay_port}",
                "MECENE_GATEWAY": f"127.0.0.1:{self.front_port}",
                "MECENE_RELAY_SOURCE": RELAY_SOURCE,
            },
            self.data / "relay.log",
        )
        wait_http(f"{self.front_url}/v1", front_proc, "the front end", self.front_log)
        wait_http(
            f"{self.relay_url}/v1/ohttp-keys", relay_proc, "the relay", self.data / "relay.log"
        )
        return self

    def lines(self) -> list[LogLine]:
        out = []
        for raw in self.front_log.read_text(errors="replace").splitlines():
            parts = raw.split(" ", 5)
            if len(parts) == 6 and parts[0][:1].isdigit() and parts[5].startswith("ua="):
                at, address, method, path, status, captured = parts
                ua, _, account = captured[4:-1].rpartition("|")
                ua = "{" + ua + "}"
                out.append(LogLine(float(at), address, method, path, int(status), ua, account))
        return out

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)
