"""The real `mecene` command and daemon process: start, refuse, pair, stop, crash."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.files import DataDir
from tests.support.constants import PASSPHRASE
from tests.support.daemons import Daemon, free_port, mecene, start
from tests.support.hubs import HubProcess, wait_for


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "mecene"
    result = mecene(d, "init", "--budget", "5", "--time-zone", "Europe/Paris")
    assert result.returncode == 0, result.stderr
    return d


@pytest.fixture
def daemon(data: Path) -> Iterator[Daemon]:
    d = start(data, deposit_cents=2000)
    yield d
    if d.proc.poll() is None:
        d.stop()


def test_init_creates_a_private_encrypted_wallet(data: Path) -> None:
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    wallet = data / "wallet.mecene"
    assert stat.S_IMODE(os.stat(wallet).st_mode) == 0o600
    blob = wallet.read_bytes()
    assert blob.startswith(b"MECENEW\x00") and b"budget" not in blob
    again = mecene(data, "init")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_a_new_wallet_pays_as_tokens_unless_told_otherwise(tmp_path: Path) -> None:
    """Unlinkable contributions are the default for a new wallet (issue 17);
    `--unlinkable off` at init makes one that names its creators."""
    made = {}
    for name, flag in (("on", []), ("off", ["--unlinkable", "off"])):
        created = mecene(tmp_path / name, "init", "--budget", "3", *flag)
        assert created.returncode == 0, created.stderr
        made[name] = created.stdout
    assert "paid as   tokens the hub cannot tie to you (unlinkable on)" in made["on"]
    assert "paid as   a settlement that names each creator you paid" in made["off"]
    for name, unlinkable in (("on", True), ("off", False)):
        d = start(tmp_path / name)
        try:
            assert d.admin("GET", "/settings")[1]["settings"]["unlinkable"] is unlinkable
        finally:
            d.stop()


@pytest.mark.parametrize("passphrase", ["wrong passphrase!", ""])
def test_wrong_passphrase_is_one_line_and_exit_1(data: Path, passphrase: str) -> None:
    result = mecene(data, "run", "--no-tray", "--port", str(free_port()), passphrase=passphrase)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr and "passphrase" in result.stderr


def test_tampered_wallet_is_one_line_and_exit_1(data: Path) -> None:
    wallet = data / "wallet.mecene"
    blob = bytearray(wallet.read_bytes())
    blob[-5] ^= 0x40
    wallet.write_bytes(bytes(blob))
    result = mecene(data, "run", "--no-tray", "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.startswith("mecene: ") and result.stderr.strip().count("\n") == 0
    # The passphrase is right (the key check matches): the file is damaged.
    assert "is damaged" in result.stderr and "mecene restore" in result.stderr


def test_init_without_passphrase_and_without_terminal_says_how(tmp_path: Path) -> None:
    result = mecene(tmp_path / "x", "init", passphrase=None)
    assert result.returncode == 1 and "MECENE_PASSPHRASE" in result.stderr


def test_second_daemon_on_the_same_directory_is_refused(daemon: Daemon) -> None:
    result = mecene(daemon.data, "run", "--no-tray", "--port", str(free_port()))
    assert result.returncode == 1
    assert "already running" in result.stderr and str(daemon.proc.pid) in result.stderr


def test_a_taken_port_is_one_line_and_leaves_nothing_behind(daemon: Daemon, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert mecene(other, "init").returncode == 0
    result = mecene(other, "run", "--no-tray", "--port", str(daemon.port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{daemon.port}" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert not (other / "admin.token").exists() and not (other / "daemon.json").exists()


def test_listens_on_loopback_only(daemon: Daemon) -> None:
    out = (
        subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        if shutil_which("ss")
        else ""
    )
    lines = [ln for ln in out.splitlines() if f":{daemon.port} " in ln]
    if lines:
        assert all("127.0.0.1:" in ln for ln in lines), lines
    # Whatever the tool, no other local address answers.
    for addr in _other_local_addresses():
        with pytest.raises(OSError):
            socket.create_connection((addr, daemon.port), timeout=1).close()


def test_pair_flattr_status_and_clean_stop(daemon: Daemon) -> None:
    token = daemon.pair()
    listed = mecene(daemon.data, "pair", "list")
    assert "test browser" in listed.stdout and "active" in listed.stdout
    status, _ = daemon.request(
        "POST",
        "/clicks",
        {"id": str(uuid.uuid4()), "url": "https://example.org/a", "creator": "flattr:a"},
        token,
    )
    assert status == 201
    shown = mecene(daemon.data, "status")
    assert shown.returncode == 0
    assert "flattrs   1" in shown.stdout and "5.00 €" in shown.stdout
    as_json = json.loads(mecene(daemon.data, "status", "--json").stdout)
    assert as_json["clicks"] == 1 and as_json["per_click_cents"] == 500
    budget = mecene(daemon.data, "budget", "7.50")
    assert budget.returncode == 0 and "7.50 €" in budget.stdout
    # A new wallet pays as tokens; the person can turn it off and on again.
    assert "paid as    tokens the hub cannot tie to you (unlinkable on)" in budget.stdout
    linked = mecene(daemon.data, "budget", "--unlinkable", "off")
    assert linked.returncode == 0, linked.stderr
    assert "paid as    a settlement that names each creator you paid" in linked.stdout
    assert daemon.admin("GET", "/settings")[1]["settings"]["unlinkable"] is False
    assert mecene(daemon.data, "budget", "--unlinkable", "on").returncode == 0
    assert daemon.admin("GET", "/settings")[1]["settings"]["unlinkable"] is True
    revoke = mecene(daemon.data, "pair", "revoke", "test browser")
    assert revoke.returncode == 0, revoke.stderr
    assert daemon.request("GET", "/status", token=token)[0] == 401
    assert daemon.stop() == 0
    assert not (daemon.data / "daemon.json").exists()
    assert not (daemon.data / "admin.token").exists()
    log = daemon.log
    assert "Traceback" not in log and token not in log


def test_deposit_shows_the_fee_before_paying(daemon: Daemon) -> None:
    """`mecene deposit 20 --method card`: the fee first, then the money, at the
    embedded hub; with no terminal to ask at, it needs --yes."""
    asked = mecene(daemon.data, "deposit", "20", "--method", "card")
    assert asked.returncode == 1
    assert "Deposit 20.00 € by card: fee 0.70 €, you pay 20.70 €." in asked.stdout
    assert "--yes" in asked.stderr
    paid = mecene(daemon.data, "deposit", "20", "--method", "card", "--yes")
    assert paid.returncode == 0, paid.stderr
    # 20 € from the fixture, 20 € now, at the embedded hub: said for what it is.
    assert "Balance: 40.00 € (practice hub on this computer: simulated money)." in paid.stdout
    refused = mecene(daemon.data, "deposit", "1", "--yes")
    assert refused.returncode == 1 and "a deposit is 2.00 € to 1000.00 €" in refused.stderr
    status, state = daemon.admin("GET", "/hub")
    assert status == 200 and state["hub"]["reachable"] is True


def test_a_person_is_also_a_creator_through_the_cli(daemon: Daemon) -> None:
    """A flattr id from the hub (and never flattring it oneself), a claim with
    its token and where to put it, earnings; every refusal in one line."""
    issued = mecene(daemon.data, "creator", "flattr-id")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.split("Your flattr id: ")[1].split(" ")[0]
    assert f'<meta name="flattr:id" content="{key[7:]}">' in issued.stdout
    again = mecene(daemon.data, "creator", "flattr-id")  # the same id, not a new one
    assert f"Your flattr id: {key} (issued before: it stays the same)" in again.stdout
    token = daemon.pair()
    body = {"id": str(uuid.uuid4()), "url": "https://me.example/", "creator": key}
    status, out = daemon.request("POST", "/clicks", body, token)
    assert (status, out["error"]) == (409, "flattr_owner")
    claim = mecene(daemon.data, "creator", "claim", "domain:me.example")
    assert claim.returncode == 0, claim.stderr
    assert "/.well-known/mecene-claim.txt" in claim.stdout and "mecene-claim-" in claim.stdout
    claim_id = claim.stdout.split("Claim ")[1].split(" ")[0]
    unproved = mecene(daemon.data, "creator", "verify", claim_id)
    assert unproved.returncode == 1 and "not proved yet" in unproved.stderr
    assert unproved.stderr.strip().count("\n") == 0
    shown = mecene(daemon.data, "creator", "status", "--json")
    assert json.loads(shown.stdout)["keys"] == [key]
    said = mecene(daemon.data, "creator", "status").stdout
    assert "received   0.00 € from givers, fee 0.00 € (10 %), 0.00 € to you" in said
    assert "balance    0.00 € (nothing to withdraw)" in said
    poor = mecene(daemon.data, "creator", "withdraw", "10")
    assert poor.returncode == 1 and "creator balance is 0.00 €, less than 10.00 €" in poor.stderr


def test_the_cli_prints_tables_and_json(daemon: Daemon) -> None:
    status = mecene(daemon.data, "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^hub +http://127\.0\.0\.1:\d+ \(reachable\)$", status.stdout, re.M)
    months = mecene(daemon.data, "months")
    lines = months.stdout.splitlines()
    assert lines[0].split() == [
        "month",
        "state",
        "spent",
        "given",
        "settled",
        "/",
        "waiting",
        "for",
        "tokens",
    ]
    assert set(lines[1]) == {"─", " "} and " open " in lines[2]
    as_json = json.loads(mecene(daemon.data, "months", "--json").stdout)
    assert [m["state"] for m in as_json] == ["open"]
    synced = mecene(daemon.data, "sync")
    assert synced.returncode == 0 and "Every closed month is settled." in synced.stdout
    daemon.pair()
    listed = mecene(daemon.data, "pair", "list").stdout.splitlines()
    assert listed[0].split() == [
        "state", "code", "or", "id", "browser", "key", "paired", "last", "used",
    ]  # fmt: skip
    assert listed[2].startswith("active") and "test browser" in listed[2]
    # Paired just now, not used yet: its key's fingerprint, then when.
    assert listed[2].rstrip().endswith("never") and listed[2].count(":") == 1


def test_autostart_installs_and_removes_a_login_entry(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    entry = tmp_path / "config" / "autostart" / "mecene.desktop"
    enabled = mecene(data, "autostart", "enable")
    assert enabled.returncode == 0, enabled.stderr
    text = entry.read_text()
    assert "[Desktop Entry]" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line.endswith(f" run --data-dir {data}")
    assert str(entry) in mecene(data, "autostart", "status").stdout
    unit = tmp_path / "config" / "systemd" / "user" / "mecene.service"
    assert mecene(data, "autostart", "enable", "--systemd").returncode == 0
    assert "ExecStart=" in unit.read_text() and "WantedBy=default.target" in unit.read_text()
    assert mecene(data, "autostart", "disable").returncode == 0
    assert mecene(data, "autostart", "disable", "--systemd").returncode == 0
    assert not entry.exists() and not unit.exists()
    assert mecene(data, "autostart", "status").stdout.strip() == "not enabled"


def test_cli_says_when_the_daemon_is_not_running(data: Path) -> None:
    result = mecene(data, "status")
    assert result.returncode == 1 and "not running" in result.stderr


def test_acknowledged_clicks_survive_kill_9(data: Path) -> None:
    """Clicks from concurrent clients, SIGKILL in the middle: every 2xx is on disk, once."""
    d = start(data)
    token = d.pair()
    acked: list[tuple[str, str]] = []  # (click id, url) of every 2xx
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        for i in range(10_000):
            if stop.is_set():
                return
            cid, url = str(uuid.uuid4()), f"https://site{n}.example/{i}"
            try:
                status, _ = d.request(
                    "POST", "/clicks", {"id": cid, "url": url, "creator": "flattr:a"}, token
                )
            except Exception:  # killed mid-answer (reset, IncompleteRead, cut JSON): not acked
                return
            if status in (200, 201):
                with lock:
                    acked.append((cid, url))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    d.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 150
    conn = sqlite3.connect(data / "daemon.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [r[0] for r in conn.execute("SELECT id FROM clicks")]
    conn.close()
    assert {cid for cid, _ in acked} <= set(ids)
    assert len(ids) == len(set(ids))
    # After a restart, a client retrying its acknowledged clicks (it may not
    # have seen the answers) gets the same clicks back and adds nothing.
    again = start(data)
    try:
        for cid, url in acked[-25:]:
            status, out = again.request(
                "POST", "/clicks", {"id": cid, "url": url, "creator": "flattr:a"}, token
            )
            assert status == 200 and out["click"]["id"] == cid
        status, out = again.request("GET", "/status", token=token)
        assert out["clicks"] == len(ids)
    finally:
        again.stop()


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def _other_local_addresses() -> list[str]:
    addrs = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addrs.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(a for a in addrs if not a.startswith("127."))


def _init_at_a_terminal(
    data: Path, answers: list[str | None], *args: str, command: str = "init"
) -> tuple[int, str]:
    """Run `mecene init` (or `command`) on a pseudo-terminal and type `answers`
    at its prompts; None is Ctrl-D."""
    import pty

    env = {k: v for k, v in os.environ.items() if k != "MECENE_PASSPHRASE"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes mecene, with the pty as its terminal
        argv = [sys.executable, "-m", "daemon", command, "--data-dir", str(data), *args]
        os.execve(sys.executable, argv, env)

    def read() -> bytes:
        import select

        if not select.select([fd], [], [], 30)[0]:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"mecene init said nothing for 30 s: {out!r}")
        try:
            return os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            return b""

    out = b""
    for answer in answers:
        while not out.rsplit(b"\n", 1)[-1].endswith((b": ", b"] ")):  # a prompt
            chunk = read()
            if not chunk:
                raise AssertionError(f"no prompt: {out!r}")
            out += chunk
        os.write(fd, b"\x04" if answer is None else answer.encode() + b"\n")
        out += b"\n"
    while chunk := read():
        out += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_init_at_a_terminal_asks_twice(tmp_path: Path) -> None:
    code, out = _init_at_a_terminal(tmp_path / "a", [PASSPHRASE, PASSPHRASE])
    assert code == 0, out
    assert "Same passphrase again" in out and PASSPHRASE not in out  # not echoed
    assert (tmp_path / "a" / "wallet.mecene").exists()
    assert out.index("at least 8 characters") < out.index("Wallet passphrase")  # said first
    # Two that differ, then one too short: asked again each time, not ended.
    code, out = _init_at_a_terminal(
        tmp_path / "b", [PASSPHRASE, PASSPHRASE + "x", "short", PASSPHRASE, PASSPHRASE]
    )
    assert code == 0, out
    assert "The two differ. Try again" in out
    assert "That is 5 characters: at least 8, please. Try again" in out
    assert (tmp_path / "b" / "wallet.mecene").exists()
    # Ctrl-D after a mismatch gives up: nothing written.
    code, out = _init_at_a_terminal(tmp_path / "c", [PASSPHRASE, PASSPHRASE + "x", None])
    assert code == 1 and "no passphrase given" in out
    assert not (tmp_path / "c" / "wallet.mecene").exists()


def test_init_refuses_bad_settings_before_asking_for_a_passphrase(tmp_path: Path) -> None:
    for args, said in [
        (("--budget", "1"), "the budget must be at least 2.00 € a month"),
        (("--time-zone", "Mars/Olympus_Mons"), "Mars/Olympus_Mons"),
    ]:
        code, out = _init_at_a_terminal(tmp_path / "x", [], *args)
        assert code == 1 and said in out, out
        assert "passphrase" not in out.lower()  # refused before the prompt
        assert not (tmp_path / "x" / "wallet.mecene").exists()


def test_ctrl_d_at_a_passphrase_prompt_is_one_line(daemon: Daemon, tmp_path: Path) -> None:
    """Ctrl-D (end of input) at any prompt: a sentence, exit 1, no traceback."""
    for answers in ([None], [PASSPHRASE, None]):
        code, out = _init_at_a_terminal(tmp_path / "y", answers)
        assert code == 1, out
        assert "Traceback" not in out and "EOFError" not in out
        assert "mecene: no passphrase given" in out
        assert not (tmp_path / "y" / "wallet.mecene").exists()
    code, out = _init_at_a_terminal(daemon.data, [None], command="unlock")
    assert code == 1 and "Traceback" not in out and "mecene: no passphrase given" in out, out
    code, out = _init_at_a_terminal(daemon.data, [None], "5", command="deposit")
    assert code == 1 and "Traceback" not in out and "Nothing deposited." in out, out


def test_ctrl_c_stops_the_daemon_cleanly(daemon: Daemon) -> None:
    assert daemon.stop(signal.SIGINT) == 0
    assert not (daemon.data / "daemon.json").exists()
    assert "Traceback" not in daemon.log


def test_creator_status_says_why_money_is_where_it_is() -> None:
    """Below the smallest withdrawal it is not "withdrawable"; the fee, what
    waits for the creator to give, and what waits in escrow are each said."""
    from daemon.cli import creator_status

    me = {
        "received": {"gross_cents": 500, "fee_cents": 50, "net_cents": 450},
        "creator_balance_cents": 450,
        "withdrawable_cents": 0,
        "min_withdrawal_cents": 1000,
        "withheld": [{"month": "2026-10", "cents": 1000}],
        "min_giving_cents": 200,
        "escrow": [{"key": "domain:bob.example", "cents": 300, "fee_cents": 30, "net_cents": 270}],
        "keys": ["flattr:m1"],
        "nonprofit": False,
    }
    assert creator_status(me).splitlines() == [
        "received   5.00 € from givers, fee 0.50 € (10 %), 4.50 € to you",
        "balance    4.50 € (not withdrawable yet: the smallest withdrawal is 10.00 €)",
        "withheld   10.00 € for 2026-10: paid to you once you give at least 2.00 € in 2026-10"
        " (to receive, you must give)",
        "in escrow  2.70 € under domain:bob.example (3.00 € given, less the hub's fee 0.30 €):"
        " yours once you prove the key"
        " (mecene creator verify ID)",
        "keys       flattr:m1",
    ]
    rich = {**me, "creator_balance_cents": 1200, "withdrawable_cents": 1200, "nonprofit": True}
    assert creator_status(rich).splitlines()[:2] == [
        "received   5.00 € from givers, no fee: a non-profit, 4.50 € to you",
        "balance    12.00 € (withdrawable: mecene creator withdraw EUROS, from 10.00 €)",
    ]


def test_tokens_for_creators_not_on_mecene_are_said_held_not_delivered() -> None:
    """An unlinkable month read "74 delivered to creators" while the money
    waited in escrow for creators who had not joined."""
    from daemon.cli import tokens_text

    redeemed = {"tokens": 5, "cents": 50, "held_tokens": 3, "held_cents": 30}
    assert tokens_text({"redeemed": redeemed, "ready": {"tokens": 2, "cents": 20}}) == (
        "7 tokens, 2 delivered, 3 held for creators not on Mécène yet, 2 on their way"
    )
    assert tokens_text({"redeemed": {"tokens": 4, "cents": 40}}) == "4 tokens, 4 delivered"


def test_status_says_when_a_month_not_ended_everywhere_is_settled() -> None:
    """Just after midnight UTC, `mecene status` said "month not ended" and not
    that the month settles from 12:00 UTC on the 1st, nor when that is."""
    from daemon.cli import why_waiting

    november = {"month": "2026-11", "sync_error": "month_not_ended"}
    just_after = dt.datetime(2026, 12, 1, 0, 20, tzinfo=dt.UTC)
    assert why_waiting(november, just_after) == (
        "a month is settled once it has ended in every time zone: from 12:00 UTC on 1 Dec,"
        " in 11 h 40 min"
    )
    assert why_waiting(november, just_after.replace(hour=11, minute=50)).endswith("in 10 min")
    assert why_waiting(november, just_after.replace(hour=13)).endswith(": sending")
    assert why_waiting({"month": "2026-11", "sync_error": "hub_unreachable"}) == "hub unreachable"


def test_mecene_run_help_explains_every_flag() -> None:
    from daemon.cli import parser

    run = parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    flags = {a.option_strings[-1]: a.help for a in run._actions if a.option_strings}
    assert {"--port", "--hub", "--hub-port", "--no-tray", "--data-dir"} <= set(flags)
    assert [f for f, text in flags.items() if not text] == []  # each says what it does
    assert run.description and "MECENE_PASSPHRASE" in run.description


def test_the_embedded_hub_can_have_a_fixed_port(tmp_path: Path) -> None:
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "5", "--time-zone", "UTC").returncode == 0
    hub_port = free_port()
    daemon = start(data, args=["--hub-port", str(hub_port)])
    try:
        assert daemon.admin("GET", "/hub")[1]["hub"]["url"] == f"http://127.0.0.1:{hub_port}"
    finally:
        daemon.stop()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_scripts_run_installs_once_then_starts_at_once(tmp_path: Path) -> None:
    """`scripts/run` ran pip on every start (16 s); now only when the sources
    changed. A virtualenv of its own, so the suite's editable install stays.
    Its next steps are for the data directory it was given: the dashboard's
    command it prints works as printed (it lacked `--data-dir`), and the
    packages it names exist."""
    root = Path(__file__).resolve().parents[2]
    venv = tmp_path / "venv"
    env = {**os.environ, "MECENE_VENV": str(venv), "MECENE_PASSPHRASE": PASSPHRASE}
    env.pop("DISPLAY", None)
    script = ["bash", str(root / "scripts" / "run")]
    helped = subprocess.run(
        [*script, "--help"], env=env, capture_output=True, text=True, timeout=600
    )
    assert helped.returncode == 0, helped.stderr
    assert "--hub-port" in helped.stdout
    assert "Installing Mécène into" in helped.stderr
    stamp = (venv / ".mecene-installed").read_text().strip()
    assert len(stamp) == 64  # the sources' SHA-256

    data = tmp_path / "my data"  # a space, as in a person's folder names
    port = free_port()
    argv = [*script, "--data-dir", str(data), "--port", str(port), "--no-tray"]
    argv += ["--hub-port", str(free_port())]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        said = []
        for line in proc.stderr:
            said.append(line)
            if "the dashboard:" in line:
                break
        said_text = "".join(said)
        assert "is up to date" in said_text and "Installing" not in said_text, said_text
        command = said_text.split("the dashboard:", 1)[1].strip()
        xpi = re.search(r"(\S+/dist/mecene-firefox-[\d.]+\.xpi)", said_text)
        assert xpi and Path(xpi.group(1)).is_file(), said_text
        assert (root / "build" / "chromium" / "manifest.json").is_file()
        wait_for(lambda: DataDir(data).wallet.exists() and port_open(port), "the daemon")
        opened = subprocess.run(
            [*shlex.split(command), "--print"], capture_output=True, text=True, timeout=60
        )
        assert opened.returncode == 0, (command, opened.stderr)
        assert opened.stdout.startswith(f"http://127.0.0.1:{port}/"), opened.stdout
    finally:
        proc.terminate()
        proc.wait(30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


GIVE_SAYS = {
    "on": [
        "domain:example.org is not on Mécène yet: the money is held for them until they join"
        " (as tokens, it cannot come back to you).",
        "Recorded: 5.00 € to domain:example.org, paid from tokens bought at a moment of their"
        " own within about an hour and a half, so that the hub learns neither its amount nor"
        " its moment; they reach them over the next hours.",
    ],
    "off": [
        "domain:example.org is not on Mécène yet: the money is held for them for 12 months,"
        " then comes back to you.",
        "Given: 5.00 € to domain:example.org (receipt signed by the hub).",
    ],
}


def test_a_reader_that_stops_early_ends_no_command_in_a_traceback(daemon: Daemon) -> None:
    """`mecene status | head -5` ended in a BrokenPipeError traceback. The
    pipe here is closed before mecene writes a word: it ends quietly."""
    read, write = os.pipe()
    os.close(read)  # `head` has read what it wanted and gone
    env = {**os.environ, "MECENE_PASSPHRASE": PASSPHRASE}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "daemon", "status", "--data-dir", str(daemon.data)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_mecene_open_says_when_no_browser_started(daemon: Daemon, tmp_path: Path) -> None:
    """With `xdg-open` there but no browser behind it (it exits 3, "a
    required tool could not be found"), `mecene open` said nothing and
    nothing opened. It prints the link and says to open it."""
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "xdg-open"
    fake.write_text("#!/bin/sh\necho 'xdg-open: no method available for opening' >&2\nexit 3\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tools}:{os.environ['PATH']}", "BROWSER": ""}
    done = mecene(daemon.data, "open", env_extra=env)
    assert done.returncode == 0, done.stderr
    link, _valid, said = done.stdout.splitlines()
    assert link.startswith(f"http://127.0.0.1:{daemon.port}/dashboard/login#")
    assert said == "No browser could be started: open the link above yourself."
    fake.write_text("#!/bin/sh\nexit 0\n")  # a browser took it
    assert mecene(daemon.data, "open", env_extra=env).stdout.count("\n") == 2


def test_a_key_is_typed_as_the_screens_show_it(daemon: Daemon) -> None:
    """`liberapay.com/alice`, as the popup, the dashboard and `mecene status`
    show a creator, was refused by `mecene give` and `mecene creator claim`
    ("unknown creator key kind"). Every readable form is taken; a wrong one
    is told the spellings that work."""
    given = mecene(daemon.data, "give", "liberapay.com/alice", "2", "--yes")
    assert given.returncode == 0, given.stderr
    assert given.stdout.startswith("Give 2.00 € to liberapay:alice")
    claimed = mecene(daemon.data, "creator", "claim", "https://liberapay.com/alice/")
    assert claimed.returncode == 0, claimed.stderr
    assert "liberapay:alice" in claimed.stdout
    wrong = mecene(daemon.data, "give", "Alice", "2", "--yes")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("mecene: creator: 'Alice' is not a creator key: write it as")
    assert "liberapay.com/NAME" in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.parametrize("unlinkable", ["on", "off"])
def test_mecene_give_shows_what_the_creator_receives_then_gives(
    daemon: Daemon, unlinkable: str
) -> None:
    assert mecene(daemon.data, "budget", "--unlinkable", unlinkable).returncode == 0
    given = mecene(daemon.data, "give", "domain:example.org", "5", "--yes", "--note", "thanks")
    assert given.returncode == 0, given.stderr
    assert given.stdout.splitlines() == [
        "Give 5.00 € to domain:example.org: they receive 4.50 € (the hub's fee 0.50 € (10 %)),"
        " from your balance, on top of this month's budget.",
        *GIVE_SAYS[unlinkable],
    ]
    wait_for(  # as tokens: once a batch is bought, at a moment of its own
        lambda: daemon.admin("GET", "/transfers")[1]["transfers"][0]["state"] == "given",
        "the gift given",
    )
    status = json.loads(mecene(daemon.data, "status", "--json").stdout)
    assert (status["given_cents"], status["balance_cents"]) == (500, 1500)
    months = mecene(daemon.data, "months").stdout
    assert "given" in months.splitlines()[0] and "5.00 €" in months
    too_little = mecene(daemon.data, "give", "domain:example.org", "0.50", "--yes")
    assert too_little.returncode == 1
    assert too_little.stderr.strip() == "mecene: a transfer is 1.00 € to 1000.00 €"
    too_much = mecene(daemon.data, "give", "domain:example.org", "16", "--yes")
    assert too_much.returncode == 1 and "deposit at least 1.00 € more first" in too_much.stderr
    transfers = daemon.admin("GET", "/transfers")[1]["transfers"]
    assert [(t["cents"], t["state"], t["note"]) for t in transfers] == [(500, "given", "thanks")]


@pytest.mark.parametrize("unlinkable", ["on", "off"])
def test_a_transfer_survives_kill_9_before_it_was_sent(
    tmp_path: Path, unlinkable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledged (202: recorded, the hub down), then `kill -9`: the daemon
    started again sends it by itself, and the hub has it once: as a transfer,
    or (unlinkable) as tokens issued once and each redeemed once."""

    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", "2")
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.5")  # apart from signed calls, briefly
    hub = HubProcess(tmp_path / "hub", free_port(), []).start()
    data = tmp_path / "mecene"
    init = ["init", "--budget", "5", "--time-zone", "UTC", "--unlinkable", unlinkable]
    assert mecene(data, *init).returncode == 0
    daemon = start(data, args=["--hub", hub.url], deposit_cents=2000)
    try:
        hub.stop()
        token = daemon.pair()
        body = {"id": str(uuid.uuid4()), "creator": "domain:example.org", "cents": 700}
        status, out = daemon.request("POST", "/transfers", body, token)
        assert (status, out["transfer"]["state"]) == (202, "sending"), out
        daemon.kill()
        hub.start()
        daemon = start(data, args=["--hub", hub.url])
        deadline = time.monotonic() + 60
        while True:
            (got,) = daemon.admin("GET", "/transfers")[1]["transfers"]
            if got["state"] == "given":
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.3)
        assert got["id"] == body["id"]
        # As tokens, two batches of 5 € were bought for it (3 € stay held for gifts).
        held = 0 if unlinkable == "off" else 300
        wait_for(
            lambda: daemon.admin("GET", "/status")[1]["balance_cents"] == 1300 - held,
            "the balance after the gift",
        )

        def hub_rows(sql: str) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(tmp_path / "hub" / "hub.db")
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()

        if unlinkable == "off":
            assert got["receipt"]["cents"] == 700
            assert hub_rows("SELECT id, cents FROM transfers") == [(body["id"], 700)]  # once
        else:
            assert got["receipt"] is None and got["unlinkable"] is True
            issued = hub_rows("SELECT ref, cents FROM token_issues")
            # Two batches, each bought once, named after nothing of the gift.
            assert [c for _r, c in issued] == [500, 500], issued
            assert all(r.startswith("transfer:pool-") for r, _c in issued)
            wait_for(
                lambda: hub_rows("SELECT sum(cents) FROM spent_tokens") == [(700,)],
                "the gift's tokens redeemed",
            )
            assert hub_rows("SELECT count(*) FROM transfers") == [(0,)]
        check = hub.cli("check")
        assert check.returncode == 0 and json.loads(check.stdout)["sum_cents"] == 0
    finally:
        daemon.stop()
        hub.stop()
