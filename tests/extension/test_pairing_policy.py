"""The extension's pairing policy (extension/pairing.js) as a table of cases:
state and event in, new state and actions out, run in Node (no browser needed:
the policy is pure)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.support.browser import EXTENSION

NOW = 1_000_000
LIVE = {"id": "p1", "code": "123456", "expiresAt": NOW + 60_000, "tabId": 7, "url": "https://a/"}
OLD = {**LIVE, "expiresAt": NOW - 1}
WAKE_OFF = {"do": "wake", "on": False}

# (name, state, event, expected state, expected actions)
CASES: list[tuple[str, Any, dict[str, Any], Any, list[dict[str, Any]]]] = [
    (
        "start with nothing asks the daemon",
        None,
        {"type": "start", "tabId": 7, "url": "https://a/"},
        None,
        [{"do": "request"}],
    ),
    (
        "start again keeps the same code",
        LIVE,
        {"type": "start", "tabId": 9, "url": "https://b/"},
        {**LIVE, "tabId": 9, "url": "https://b/"},
        [],
    ),
    ("start after expiry asks for a new code", OLD, {"type": "start"}, None, [{"do": "request"}]),
    (
        "created: kept, woken, polled",
        None,
        {
            "type": "created",
            "id": "p1",
            "code": "123456",
            "expiresIn": 60,
            "tabId": 7,
            "url": "https://a/",
        },
        LIVE,
        [{"do": "wake", "on": True}, {"do": "poll"}],
    ),
    ("pending answer waits", LIVE, {"type": "answer", "status": "pending"}, LIVE, []),
    (
        "approved: token, the flattr asked for, done",
        LIVE,
        {"type": "answer", "status": "approved", "token": "t"},
        None,
        [
            {"do": "token", "token": "t"},
            {"do": "flattr", "tabId": 7, "url": "https://a/"},
            WAKE_OFF,
            {"do": "ended", "status": "approved"},
        ],
    ),
    (
        "approved without a token is not approved",
        LIVE,
        {"type": "answer", "status": "approved"},
        None,
        [WAKE_OFF, {"do": "ended", "status": "expired"}],
    ),
    (
        "denied",
        LIVE,
        {"type": "answer", "status": "denied"},
        None,
        [WAKE_OFF, {"do": "ended", "status": "denied"}],
    ),
    (
        "404: the daemon forgot it",
        LIVE,
        {"type": "gone"},
        None,
        [WAKE_OFF, {"do": "ended", "status": "expired"}],
    ),
    ("tick while live polls", LIVE, {"type": "tick"}, LIVE, [{"do": "poll"}]),
    (
        "tick after expiry ends it",
        OLD,
        {"type": "tick"},
        None,
        [WAKE_OFF, {"do": "ended", "status": "expired"}],
    ),
    ("tick with nothing stops the alarm", None, {"type": "tick"}, None, [WAKE_OFF]),
    (
        "a late answer after the end changes nothing",
        None,
        {"type": "answer", "status": "approved", "token": "t"},
        None,
        [],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_pairing_policy(case: tuple[str, Any, dict[str, Any], Any, list[dict[str, Any]]]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run scripts/test")
    _name, state, event, want_state, want_actions = case
    script = (
        f"require({json.dumps(str(EXTENSION / 'pairing.js'))});"
        f"process.stdout.write(JSON.stringify(globalThis.MecenePairing.next("
        f"{json.dumps(state)}, {json.dumps(event)}, {NOW})));"
    )
    out = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, check=True, timeout=30
    )
    got = json.loads(out.stdout)
    assert got == {"state": want_state, "actions": want_actions}
