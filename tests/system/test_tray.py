"""The tray icon in a real X session (Xvfb) with a tray host (trayer), the
daemon started as a person starts it (`mecene run`, which starts the tray):
the icon docks, a right click opens the menu, the menu's lines are the
month's real figures, and its items act on the daemon — approving a
browser's pairing code, pausing subscriptions. Plus the pure model."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.browsers.pairing import new_token
from daemon.tray import TrayModel
from tests.support.browser import EXTENSION
from tests.support.channel import Channel
from tests.support.daemons import Daemon, group_members, mecene, start
from tests.support.xvfb import Xvfb

# -- the model: what the tray shows for what the daemon says ------------------------

STATUS = {
    "locked": False,
    "month": "2026-11",
    "budget_cents": 500,
    "balance_cents": 2000,
    "clicks": 3,
    "spend_cents": 500,
    "per_click_cents": 166,
}


def test_the_menu_lines_are_the_month_s_figures() -> None:
    model = TrayModel(status=STATUS, settings={"subscriptions_paused": False})
    assert model.state == "unlocked"
    assert model.lines() == [
        "November 2026: 5.00 € spent of 5.00 €",
        "3 flattrs, 1.66 € each",
        "Balance 20.00 €",
    ]
    # A direct transfer this month: its own part of the month's line.
    given = TrayModel(status={**STATUS, "given_cents": 2000}, settings={})
    assert given.lines()[0] == "November 2026: 5.00 € spent of 5.00 € + 20.00 € given"
    # Cents below zero are written as such (it read "-1.95 €" for -5 cents).
    short = TrayModel(status={**STATUS, "balance_cents": -5}, settings={})
    assert short.lines()[2] == "Balance -0.05 €"


def test_with_weights_the_menu_lists_each_flattr_and_what_it_comes_to() -> None:
    """ "20 flattrs, 0.32 € each" was wrong with weights: a flattr of weight
    3 is worth three of weight 1. The line says the value of a weight of 1,
    and the menu lists each flattr with what it comes to, largest first."""
    clicks = [
        {"creator": "flattr:alice", "title": None, "weight": 3, "created_at": "2026-11-02"},
        {
            "creator": "liberapay:bob",
            "title": "By Bob",
            "weight": 1,
            "created_at": "2026-11-01",
        },
        {"creator": "domain:example.org", "title": None, "weight": 1, "created_at": "2026-11-03"},
    ]
    status = {**STATUS, "clicks": 3, "per_click_cents": 100}
    model = TrayModel(status=status, settings={}, clicks=clicks)
    assert model.lines()[1] == "3 flattrs, 1.00 € for each of weight 1"
    assert model.flattr_entries() == [
        "Flattr ID alice — 3.00 € (weight 3)",
        "By Bob — 1.00 €",
        "example.org — 1.00 €",
    ]
    many = [{**clicks[2], "created_at": f"2026-11-{i:02d}"} for i in range(1, 21)]
    listed = TrayModel(status=status, settings={}, clicks=many).flattr_entries()
    assert len(listed) == 16 and listed[-1] == "… and 5 more (the dashboard lists them all)"


@pytest.mark.parametrize(
    ("model", "state", "last_line"),
    [
        (TrayModel(status={"locked": True}), "locked", "The wallet is locked."),
        (
            TrayModel(status=STATUS, settings={"subscriptions_paused": True}),
            "paused",
            "Balance 20.00 €",
        ),
        (
            TrayModel(status=STATUS, hub={"reachable": False}),
            "problem",
            "The hub is unreachable: months wait to be sent.",
        ),
        (
            TrayModel(
                status=STATUS, months=[{"month": "2026-10", "sync_error": "insufficient_funds"}]
            ),
            "problem",
            "2026-10 was not accepted by the hub (insufficient funds).",
        ),
        (
            TrayModel(
                status=STATUS,
                months=[
                    {
                        "month": "2026-10",
                        "sync_error": None,
                        "moved": [
                            {"from_month": "2026-10", "to_month": "2026-11"},
                            {"from_month": "2026-10", "to_month": "2026-11"},
                        ],
                    }
                ],
            ),
            "unlocked",
            "2 flattrs of 2026-10 came after it was settled: moved to 2026-11",
        ),
        (
            TrayModel(
                status=STATUS, months=[{"month": "2026-10", "sync_error": "settled_elsewhere"}]
            ),
            "unlocked",
            "2026-10: settled by another of your computers",
        ),
        (
            TrayModel(status=STATUS, hub={"reachable": True, "removed": "removed"}),
            "problem",
            "This computer was removed from the wallet: it sends nothing to the hub.",
        ),
        (
            TrayModel(error="the daemon is not running"),
            "problem",
            "the daemon is not running",
        ),
        (
            TrayModel(status={**STATUS, "warning": "balance_short", "short_cents": 120}),
            "unlocked",
            "Short of 1.20 €: deposit to give it all",
        ),
        (
            TrayModel(
                status={
                    **STATUS,
                    "clock": {"state": "held", "message": "The computer's clock jumped"},
                }
            ),
            "problem",
            "Months wait: the computer's clock jumped.",
        ),
        (
            TrayModel(status={**STATUS, "clock": {"state": "behind", "message": "reads 2026-10"}}),
            "unlocked",
            "Balance 20.00 €",
        ),
    ],
)
def test_the_icon_says_the_state(model: TrayModel, state: str, last_line: str) -> None:
    assert model.state == state
    assert model.lines()[-1] == last_line


# -- the real tray ---------------------------------------------------------------------


def _tray_lines(daemon: Daemon) -> list[tuple[str, str]]:
    """(state, menu text) each time the tray's menu changed, from the daemon's log."""
    return re.findall(r"mecene\.tray: tray (\w+): (.*)", daemon.log)


def _wait_for(daemon: Daemon, predicate: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in _tray_lines(daemon) if predicate(line)]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"the tray never showed {what}: {_tray_lines(daemon)}")


def _end(pid: int) -> None:
    """SIGTERM `pid` and wait (up to 30 s) until it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[tuple[Xvfb, Daemon]]:
    with Xvfb() as x:
        trayer = subprocess.Popen(
            ["trayer", "--edge", "top", "--widthtype", "request", "--height", "32"],
            env=x.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        data = tmp_path / "mecene"
        assert mecene(data, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
        env = {"DISPLAY": x.display, "PYSTRAY_BACKEND": "gtk", "MECENE_TRAY_REFRESH_SECONDS": "1"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            daemon = start(
                data, deposit_cents=2000, args=["--tray"], prefix=["dbus-run-session", "--"]
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        # dbus-run-session does not pass its SIGTERM on: end the daemon itself
        # too, by the pid it wrote (it outlived the test before).
        real_pid = int(json.loads((data / "daemon.json").read_text())["pid"])
        try:
            yield x, daemon
        finally:
            daemon.stop()
            _end(real_pid)
            trayer.terminate()
            trayer.wait(10)


def _open_menu(x: Xvfb) -> set[str]:
    """Right-click the tray icon; the windows that appeared (the menu)."""
    before = set(x.xdotool("search", "--onlyvisible", "--name", "").split())
    (tray_window,) = x.xdotool("search", "--onlyvisible", "--class", "trayer").split()[:1]
    geometry = x.xdotool("getwindowgeometry", "--shell", tray_window)
    g = dict(line.split("=") for line in geometry.split())
    cx, cy = int(g["X"]) + int(g["WIDTH"]) // 2, int(g["Y"]) + int(g["HEIGHT"]) // 2
    x.xdotool("mousemove", str(cx), str(cy), "click", "3")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = set(x.xdotool("search", "--onlyvisible", "--name", "").split()) - before
        if new:
            return new
        time.sleep(0.2)
    raise AssertionError("a right click on the tray icon opened no menu")


def test_the_tray_docks_and_its_menu_acts_on_the_daemon(
    desktop: tuple[Xvfb, Daemon], tmp_path: Path
) -> None:
    x, daemon = desktop
    state, text = _wait_for(daemon, lambda line: "Balance" in line[1], "the month")
    assert (state, text) == (
        "unlocked",
        f"{_month_name(daemon)}: 0.00 € spent of 5.00 € | 0 flattrs, 0.00 € each | "
        "Balance 20.00 € (practice money)",
    )
    # A browser asks to pair: its code is in the menu; the person approves it there.
    channel = Channel(daemon.channel_path)  # the browser's host, holding its connection
    key = new_token()
    _, started = channel.call("POST", "/pairing", {"client": "Chromium on laptop"}, key)
    _wait_for(daemon, lambda line: f"pairing {started['code']}" in line[1], "the pairing code")
    _open_menu(x)
    shot = tmp_path / "tray.png"
    subprocess.run(["import", "-window", "root", str(shot)], env=x.env(), check=True, timeout=30)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
        (EXTENSION.parent / "docs" / "tray.png").write_bytes(shot.read_bytes())
    x.xdotool("key", "Down", "Right", "Return")  # the pairing's submenu: Approve
    deadline = time.monotonic() + 10
    poll = f"/pairing/{started['pairing_id']}"
    while channel.call("GET", poll, key=key)[1]["status"] == "pending":
        assert time.monotonic() < deadline, "the menu's Approve did not approve"
        time.sleep(0.2)
    channel.close()
    browsers = daemon.admin("GET", "/browsers")[1]["browsers"]
    assert [b["name"] for b in browsers] == ["Chromium on laptop"]
    # The menu follows the month: a flattr, and the figures are the daemon's.
    browser_token = daemon.pair()
    body = {"id": str(uuid.uuid4()), "url": "https://example.org/a", "creator": "flattr:a"}
    assert daemon.request("POST", "/clicks", body, browser_token)[0] == 201
    status = daemon.admin("GET", "/status")[1]
    assert (status["clicks"], status["per_click_cents"]) == (1, 500)
    _wait_for(daemon, lambda line: "1 flattr, 5.00 € each" in line[1], "the flattr")
    # A gift the browser asks for past its daily limit waits in the menu; Confirm gives it.
    assert daemon.admin("PATCH", "/settings", {"browser_gift_limit_cents": 100})[0] == 200
    gift = {"id": str(uuid.uuid4()), "creator": "flattr:a", "cents": 200}
    status_code, asked = daemon.request("POST", "/transfers", gift, browser_token)
    assert (status_code, asked["transfer"]["state"]) == (202, "waiting"), asked
    entry = "Gift 2.00 € to flattr:a — from a browser"
    _wait_for(daemon, lambda line: entry in line[1], "the waiting gift")
    _open_menu(x)
    x.xdotool("key", "Down", "Right", "Return")  # the gift's submenu: Confirm
    deadline = time.monotonic() + 15
    while daemon.admin("GET", "/transfers")[1]["transfers"][0]["state"] == "waiting":
        assert time.monotonic() < deadline, "the menu's Confirm did not confirm"
        time.sleep(0.2)
    assert daemon.admin("GET", "/transfers")[1]["transfers"][0]["state"] in ("given", "sending")
    # As tokens (a new wallet's default): a batch of 5 € bought for it, of
    # which 3 € stay held for the next gift, and said so.
    _wait_for(
        daemon,
        lambda line: "Balance 15.00 € (practice money), and 3.00 € in tokens for gifts" in line[1],
        "the gift given",
    )
    time.sleep(1)  # the menu settles (it is rebuilt at each refresh) before it opens again
    # The month's flattrs, each with its value: one more, at weight 3.
    heavy = {
        "id": str(uuid.uuid4()),
        "url": "https://example.org/b",
        "creator": "liberapay:bob",
        "weight": 3,
    }
    assert daemon.request("POST", "/clicks", heavy, browser_token)[0] == 201
    _wait_for(
        daemon,
        lambda line: (
            "flattr liberapay.com/bob — 3.75 € (weight 3)" in line[1]
            and "2 flattrs, 1.25 € for each of weight 1" in line[1]
        ),
        "the flattrs with their weights",
    )
    time.sleep(1)
    _open_menu(x)
    x.xdotool("key", "Down", "Right")  # the flattrs' submenu, open
    time.sleep(0.5)
    shot = tmp_path / "tray-flattrs.png"
    subprocess.run(["import", "-window", "root", str(shot)], env=x.env(), check=True, timeout=30)
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
        (EXTENSION.parent / "docs" / "tray-flattrs.png").write_bytes(shot.read_bytes())
    x.xdotool("key", "Escape", "Escape")
    time.sleep(0.5)
    # Pause the subscriptions from the menu: the daemon's setting, and the icon's state.
    _open_menu(x)
    x.xdotool("key", "Down", "Down", "Return")  # past "This month's flattrs"
    _wait_for(daemon, lambda line: line[0] == "paused", "the paused state")
    assert daemon.admin("GET", "/settings")[1]["settings"]["subscriptions_paused"] is True


def _month_name(daemon: Daemon) -> str:
    import calendar

    month = daemon.admin("GET", "/status")[1]["month"]
    year, number = month.split("-")
    return f"{calendar.month_name[int(number)]} {year}"


def test_quit_from_the_tray_ends_everything_without_a_traceback(
    desktop: tuple[Xvfb, Daemon],
) -> None:
    """Quit in the menu stops the daemon and the tray; with no notification
    service on the session bus (as here) pystray's clean-up used to print a
    GLib traceback. And nothing the session started outlives it: the D-Bus
    daemon and GTK's accessibility bus were left running after the suite."""
    x, daemon = desktop
    _wait_for(daemon, lambda line: "Balance" in line[1], "the month")
    started = group_members(daemon.proc.pid)
    names = {name for _, name in started}
    assert "dbus-daemon" in names, started
    _open_menu(x)
    x.xdotool("key", "Up", "Return")  # the menu's last item: Quit Mécène
    assert daemon.proc.wait(timeout=30) == 0
    daemon.stop()  # as the fixture does: ends the process group
    assert group_members(daemon.proc.pid) == []
    log = daemon.log
    assert "Traceback" not in log and "GLib.Error" not in log, log[-3000:]
    assert "mecene: stopping" in log


def test_without_a_display_the_daemon_runs_without_a_tray_and_says_so_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "mecene"
    assert mecene(data, "init").returncode == 0
    saved = {k: os.environ.pop(k, None) for k in ("DISPLAY", "WAYLAND_DISPLAY")}
    try:
        daemon = start(data, args=["--tray"])
    finally:
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v
    try:
        assert daemon.admin("GET", "/status")[0] == 200
        assert daemon.log.count("no display: running without a tray icon") == 1
    finally:
        daemon.stop()
