"""`mecene`: create a wallet, run the daemon, pair browsers, see the month.

Commands other than `init` and `run` talk to the running daemon over its
local API with the admin token it keeps in the data directory (0600).
Errors are one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mecene import time as mtime
from mecene.amounts import euros, parse_euros
from mecene.devicewire import DeviceError

from . import autostart, backup, launch, nativehost, nativeinstall, practicehub, recovery
from .client import ApiError, LocalApi
from .devices import accept, add_with_seed, check_name, default_name
from .errors import Invalid
from .files import (
    DEFAULT_PORT,
    AlreadyRunning,
    DaemonLock,
    DataDir,
    default_data_dir,
    write_atomic,
)
from .wallet import MIN_PASSPHRASE_LENGTH, Settings, Wallet, WalletError

PASSPHRASE_ENV = "MECENE_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
NEW_PASSPHRASE_ENV = "MECENE_NEW_PASSPHRASE"  # noqa: S105 - `mecene passwd`
PHRASE_ENV = "MECENE_RECOVERY_PHRASE"  # `mecene restore`, without a terminal


class CliError(Exception):
    """A command cannot do what was asked: one line for the person."""


def euros_to_cents(text: str) -> int:
    """'4.50' → 450, without ever going through a float."""
    cents = parse_euros(text)
    if cents is None:
        raise CliError(f"not an amount in euros: {text!r} (write 5 or 4.50)")
    return cents


def money(cents: int | None) -> str:
    return "unknown" if cents is None else euros(cents)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under headers, in aligned columns (numbers right-aligned)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        bool(cells) and all(re.fullmatch(r"-?[\d.,]+( €)?|—", r[i]) for r in cells)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["─" * w for w in widths]), *map(line, cells)])


class Progress:
    """One line on stderr for something that takes a while: "what… done in 0.6 s"."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.show = sys.stderr.isatty()

    def __enter__(self) -> Progress:
        self.start = time.monotonic()
        if self.show:
            print(f"{self.what}…", end="", file=sys.stderr, flush=True)
        return self

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        if self.show:
            outcome = "failed" if exc_type else f"done in {time.monotonic() - self.start:.1f} s"
            print(f" {outcome}", file=sys.stderr, flush=True)


def read_passphrase(
    twice: bool, env_name: str = PASSPHRASE_ENV, prompt: str = "Wallet passphrase: "
) -> str:
    env = os.environ.get(env_name)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise CliError(f"no passphrase: set {env_name} or run from a terminal")
    try:
        if not twice:
            return getpass.getpass(prompt)
        # A new passphrase: its rule said first; a short one, or two that
        # differ, asked again (Ctrl-D gives up), not the program ended.
        print(
            f"Choose a passphrase of at least {MIN_PASSPHRASE_LENGTH} characters: it opens"
            " the wallet on this computer (the recovery phrase brings it back if you forget it).",
            file=sys.stderr,
        )
        while True:
            first = getpass.getpass(prompt)
            if len(first) < MIN_PASSPHRASE_LENGTH:
                print(
                    f"That is {len(first)} characters: at least {MIN_PASSPHRASE_LENGTH},"
                    " please. Try again (Ctrl-D to give up).",
                    file=sys.stderr,
                )
                continue
            if getpass.getpass("Same passphrase again: ") == first:
                return first
            print("The two differ. Try again (Ctrl-D to give up).", file=sys.stderr)
    except EOFError:  # Ctrl-D: the person gave up
        print(file=sys.stderr)
        raise CliError("no passphrase given") from None


def confirm(question: str, instead: str) -> bool:
    """Ask `question [y/N]` at the terminal; Ctrl-D is no. Without a terminal,
    CliError saying what to pass `instead`."""
    if not sys.stdin.isatty():
        raise CliError(f"{instead} (no terminal to ask at)")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:  # Ctrl-D: no
        answer = ""
        print()
    return answer.strip().lower() in ("y", "yes")


# -- talking to the running daemon ------------------------------------------


Daemon = LocalApi  # the CLI's name for the one client (daemon/client.py)


# -- commands ------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    data_dir = DataDir(args.data_dir)
    if data_dir.wallet.exists():
        raise CliError(f"a wallet already exists in {data_dir.root}")
    create_wallet(data_dir, args)
    return 0


def create_wallet(data_dir: DataDir, args: argparse.Namespace) -> Wallet:
    settings = Settings.defaults()
    changes: dict[str, Any] = {}
    if getattr(args, "budget", None):
        changes["budget_cents"] = euros_to_cents(args.budget)
    if getattr(args, "time_zone", None):
        changes["time_zone"] = args.time_zone
    if getattr(args, "unlinkable", None):
        changes["unlinkable"] = args.unlinkable == "on"
    settings = Settings(**{**settings.to_json(), **changes, "own_creators": ()})
    try:
        settings.check()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    data_dir.create()
    passphrase = read_passphrase(twice=True)
    try:
        with Progress("Deriving the wallet's key from the passphrase (Argon2id, 64 MiB)"):
            wallet = Wallet.create(data_dir.wallet, passphrase, settings)
    except WalletError as exc:
        raise CliError(str(exc)) from None
    print(f"Created a wallet in {data_dir.root}")
    print(f"  account   {wallet.account}")
    print(f"  budget    {money(settings.budget_cents)} a month, time zone {settings.time_zone}")
    print(f"  paid as   {PAID_AS[settings.unlinkable]}")
    show_phrase(wallet, first=True)
    return wallet


def show_phrase(wallet: Wallet, first: bool) -> None:
    """The recovery phrase, to a terminal only when it is shown unasked (a
    service's output goes to a log, and a secret never does)."""
    if first and not sys.stdout.isatty():
        print(
            "\nYour recovery phrase was not shown (no terminal). See it with "
            "`mecene recovery show` and write it down: it is the only way back to this "
            "wallet if this computer's disk is lost."
        )
        return
    print("\nRecovery phrase: write these 24 words down, on paper, and keep them safe.")
    print(recovery.grouped(recovery.phrase_of(wallet.data.seed)))
    print(
        "With them, `mecene restore` brings this wallet back on any computer; anyone who "
        "has them can spend your balance."
    )
    if first:
        print("See them again with `mecene recovery show` (your passphrase is asked).")


def cmd_run(args: argparse.Namespace) -> int:
    # Late: the daemon's process (aiohttp, the hub) is not loaded for the
    # other commands, which start in a moment.
    from .runner import StartError, report_a_slow_stop, run_event_loop, serve  # noqa: PLC0415

    data_dir = DataDir(args.data_dir)
    wallet: Wallet | None
    if not data_dir.wallet.exists():
        print(f"No wallet yet in {data_dir.root}: creating one with the default settings.")
        wallet = create_wallet(data_dir, args)
    elif os.environ.get(PASSPHRASE_ENV) is not None or sys.stdin.isatty():
        try:
            wallet = Wallet.open(data_dir.wallet, read_passphrase(twice=False))
        except WalletError as exc:
            raise CliError(str(exc)) from None
    else:
        wallet = None  # unlock later with `mecene unlock`
    data_dir.create()
    if args.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    try:
        run_event_loop(
            serve(
                data_dir,
                args.port,
                wallet,
                hub_url=args.hub,
                hub_port=args.hub_port,
                relay_url=args.relay,
                tray=not args.no_tray,
            )
        )
    except StartError as exc:
        raise CliError(str(exc)) from None
    report_a_slow_stop()  # threads the interpreter waits for at exit
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    daemon = Daemon(DataDir(args.data_dir))
    status = daemon.call("GET", "/status")
    hub = daemon.call("GET", "/hub")["hub"]
    months = [] if status["locked"] else daemon.call("GET", "/months")["months"]
    waiting = [m for m in months if m["state"] in ("closed", "submitted")]
    if args.json:
        print(json.dumps({**status, "hub": hub, "months_waiting": waiting}, indent=2))
        return 0
    if status["locked"]:
        print("Wallet locked: unlock it with `mecene unlock` (or the dashboard: `mecene open`).")
        return 0
    rows = [
        ("month", f"{status['month']} ({status['state']})"),
        ("budget", money(status["budget_cents"])),
        ("balance", money(status["balance_cents"]) + practice(status)),
        *(
            [("for gifts", money(status["gift_tokens_cents"]) + " in tokens")]
            if status.get("gift_tokens_cents")
            else []
        ),
        ("flattrs", str(status["clicks"])),
        ("to spend", money(status["spend_cents"])),
        ("each", money(status["per_click_cents"])),
        ("hub", f"{hub['url']} ({'reachable' if hub['reachable'] else 'not reached'})"),
    ]
    for label, value in rows:
        print(f"{label:<9} {value}")
    if status.get("warning") == "balance_short":
        print(f"warning   the balance is {money(status['short_cents'])} short of the budget")
    clock = status.get("clock") or {}
    if clock.get("state") == "held":
        print(f"clock     {clock['message']} (`mecene clock confirm` if the date is right)")
    elif clock.get("state") == "behind":
        print(f"clock     {clock['message']}")
    for m in waiting:
        print(
            f"waiting   {m['month']}: {money(m['spend_cents'])} not settled yet ({why_waiting(m)})"
        )
    return 0


def why_waiting(month: dict[str, Any], now: dt.datetime | None = None) -> str:
    """Why a closed month is not settled, in words: for a month not yet
    ended everywhere, when it is settled (a month is settled once it has
    ended in every time zone: 12:00 UTC on the 1st)."""
    error = month.get("sync_error")
    if error != "month_not_ended":
        return (error or "sending").replace("_", " ")
    ends = mtime.month_ended_everywhere(month["month"]).astimezone(dt.UTC)
    left = ends - (now or dt.datetime.now(dt.UTC))
    if left.total_seconds() <= 0:
        return f"it has ended everywhere since {ends:%H:%M} UTC on {ends.day} {ends:%b}: sending"
    hours, minutes = divmod(int(left.total_seconds() + 59) // 60, 60)
    wait = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return (
        f"a month is settled once it has ended in every time zone: from {ends:%H:%M} UTC"
        f" on {ends.day} {ends:%b}, in {wait}"
    )


def cmd_months(args: argparse.Namespace) -> int:
    months = Daemon(DataDir(args.data_dir)).call("GET", "/months")["months"]
    if args.json:
        print(json.dumps(months, indent=2))
        return 0
    rows = [
        (
            m["month"],
            m["state"],
            money(m["spend_cents"]) if m["spend_cents"] is not None else "—",
            money(m["given_cents"]) if m.get("given_cents") else "—",
            (m["settled_at"] or "")[:10] or (m["sync_error"] or "").replace("_", " "),
            tokens_text(m.get("tokens")),
        )
        for m in months
    ]
    print(table(["month", "state", "spent", "given", "settled / waiting for", "tokens"], rows))
    for m in months:
        late = [x for x in m.get("moved") or [] if x["from_month"] == m["month"]]
        if late:
            print(
                f"\n{len(late)} flattr(s) of {m['month']} came after it was settled (made "
                "offline, or on another computer):"
            )
            for x in late:
                where = f"moved to {x['to_month']}" if x["to_month"] else "already flattred there"
                print(f"  {x['title'] or x['url'] or x['creator']}: {where}")
    return 0


def tokens_text(tokens: dict[str, Any] | None) -> str:
    """An unlinkable month's tokens, where they are: "4 tokens, 3 delivered"."""
    if not tokens:
        return "—"
    count = {state: v["tokens"] for state, v in tokens.items()}
    parts = [f"{sum(count.values())} tokens"]
    held = tokens.get("redeemed", {}).get("held_tokens", 0)
    count["held"] = held
    count["redeemed"] = count.get("redeemed", 0) - held
    for states, what in (
        (("redeemed",), "delivered"),
        (("held",), "held for creators not on Mécène yet"),
        (("ready",), "on their way"),
        (("planned", "blinded"), "to be signed"),
        (("failed",), "refused"),
    ):
        n = sum(count.get(s, 0) for s in states)
        if n:
            parts.append(f"{n} {what}")
    return ", ".join(parts)


def cmd_give(args: argparse.Namespace) -> int:
    """A direct transfer: what the creator receives first, then, confirmed, send it."""
    daemon = Daemon(DataDir(args.data_dir))
    cents = euros_to_cents(args.amount)
    quote = daemon.call("POST", "/transfers/quote", {"creator": args.key, "cents": cents})
    fee = (
        "no fee: a non-profit"
        if quote["nonprofit"]
        else f"the hub's fee {money(quote['fee_cents'])} (10 %)"
    )
    print(
        f"Give {money(cents)} to {quote['creator']}: they receive {money(quote['net_cents'])} "
        f"({fee}), from your balance, on top of this month's budget."
    )
    if quote["joined"] is False and quote.get("unlinkable"):
        print(
            f"{quote['creator']} is not on Mécène yet: the money is held for them until "
            "they join (as tokens, it cannot come back to you)."
        )
    elif quote["joined"] is False:
        print(
            f"{quote['creator']} is not on Mécène yet: the money is held for them for "
            f"{quote['escrow_months']} months, then comes back to you."
        )
    if quote.get("short_cents"):
        raise CliError(
            f"the balance is {money(quote['balance_cents'])}: deposit at least "
            f"{money(quote['short_cents'])} more first"
        )
    if not args.yes and not confirm("Give it?", "confirm with --yes"):
        print("Nothing given.")
        return 1
    body = {"id": str(uuid.uuid4()), "creator": quote["creator"], "cents": cents}
    if args.note:
        body["note"] = args.note
    out = daemon.call("POST", "/transfers", body)["transfer"]
    if out["state"] == "given" and out.get("unlinkable"):
        print(
            f"Given: {money(cents)} to {out['creator']}, as tokens the hub cannot tie to you; "
            "they reach them over the next hours."
        )
    elif out["state"] == "given":
        print(f"Given: {money(cents)} to {out['creator']} (receipt signed by the hub).")
    elif out.get("error") == "buying_tokens":
        print(
            f"Recorded: {money(cents)} to {out['creator']}, paid from tokens bought at a "
            "moment of their own within about an hour and a half, so that the hub learns "
            "neither its amount nor its moment; they reach them over the next hours."
        )
    else:
        print(
            f"Recorded: {money(cents)} to {out['creator']}; the hub is not reachable now, "
            "it is sent as soon as it is."
        )
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """`mecene devices add | list | remove NAME | join CODE`."""
    if args.action == "join":
        return devices_join(args)
    daemon = Daemon(DataDir(args.data_dir))
    if args.action == "add":
        out = daemon.call("POST", "/devices/invite", {"name": args.name} if args.name else {})
        hub = daemon.call("GET", "/hub")["hub"]["url"]
        if args.json:
            print(json.dumps(out, indent=2))
            return 0
        print(
            f"On the other computer, within 15 minutes:\n\n    mecene devices join "
            f"{out['code']} --hub {hub}\n"
        )
        print("The code works once. It gives that computer this wallet: keep it to yourself.")
        return 0
    if args.action == "remove":
        if not args.what:
            raise CliError("which device? `mecene devices remove NAME`")
        out = daemon.call("DELETE", f"/devices/{args.what[0]}")
        print(f"Removed {args.what[0]} (on {out['removed']}): the hub refuses it from now on.")
        print(
            "It held this wallet's key: if that computer was lost or stolen rather than "
            "retired, move your balance to a new wallet."
        )
        return 0
    listed = daemon.call("GET", "/devices")
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    if not listed["devices"]:
        print("This wallet is on this computer only. Add another with `mecene devices add`.")
        return 0
    rows = [
        (
            d["name"] + (" (this computer)" if d["this"] else ""),
            d["added"],
            d["last_seen"] or "—",
            f"removed {d['removed']}" if d["removed"] else "active",
        )
        for d in listed["devices"]
    ]
    print(table(["device", "added", "last seen", "state"], rows))
    return 0


def devices_join(args: argparse.Namespace) -> int:
    """This computer joins a wallet, in a data directory with no wallet:
    with the code another computer shows (`mecene devices add`), or with the
    wallet's recovery phrase (`--phrase`)."""
    data_dir = DataDir(args.data_dir)
    if data_dir.wallet.exists():
        raise CliError(
            f"a wallet already exists in {data_dir.root}: join in another --data-dir, "
            "or move that wallet away first"
        )
    if not args.hub or (not args.what and not args.phrase):
        raise CliError(
            "`mecene devices join CODE --hub URL`, with the code the other computer shows, "
            "or `mecene devices join --phrase --hub URL`"
        )
    try:
        name = check_name(args.name) if args.name else default_name()
    except Invalid as exc:
        raise CliError(str(exc)) from None
    key = Ed25519PrivateKey.generate()
    settings = Settings.defaults()
    seed, joined = None, None
    try:
        if args.phrase:
            seed = recovery.seed_of(read_phrase())
            add_with_seed(args.hub, seed, key)
        else:
            # With a code, this computer never holds the seed: removed, it
            # can no longer act for the account (daemon/devices.py).
            payload = accept(args.hub, args.what[0], key)
            joined = (str(payload["account"]), dict(payload["shared"]))
            theirs = payload.get("settings")
            if isinstance(theirs, dict):
                with contextlib.suppress(TypeError, ValueError):
                    settings = Settings.from_json({**settings.to_json(), **theirs})
    except (DeviceError, recovery.PhraseError) as exc:
        raise CliError(str(exc)) from None
    data_dir.create()
    passphrase = read_passphrase(
        twice=True, prompt="A passphrase for the wallet on this computer: "
    )
    try:
        with Progress("Deriving the wallet's key from the passphrase (Argon2id, 64 MiB)"):
            wallet = Wallet.create(
                data_dir.wallet, passphrase, settings, seed=seed, device=(key, name), joined=joined
            )
    except WalletError as exc:
        raise CliError(str(exc)) from None
    write_atomic(data_dir.records_marker, b"")  # the first start fetches the records
    print(f"This computer ({name}) is now a device of the wallet {wallet.account}")
    print(
        f"Start it with `mecene run --hub {args.hub}`: the month, subscriptions and "
        "settings come from the other computers, and its flattrs go to them."
    )
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    with Progress("Sending the closed months to the hub"):
        out = Daemon(DataDir(args.data_dir)).call("POST", "/hub/sync", {})
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    left = [m for m in out["months"] if m["state"] in ("closed", "submitted")]
    if not out["hub"]["reachable"]:
        raise CliError(f"the hub at {out['hub']['url']} is unreachable; months wait for it")
    print("Every closed month is settled." if not left else f"{len(left)} month(s) still waiting.")
    return 0 if not left else 1


def cmd_pair(args: argparse.Namespace) -> int:
    daemon = Daemon(DataDir(args.data_dir))
    if args.action == "approve":
        browser = daemon.call("POST", "/pairings/approve", {"code": args.code})["browser"]
        print(f"Paired {browser['name']!r} ({browser['id']}).")
    elif args.action == "deny":
        daemon.call("POST", "/pairings/deny", {"code": args.code})
        print("Denied.")
    elif args.action == "list":
        pending = daemon.call("GET", "/pairings")["pending"]
        browsers = daemon.call("GET", "/browsers")["browsers"]
        if args.json:
            print(json.dumps({"pending": pending, "browsers": browsers}, indent=2))
            return 0
        rows = [("waiting", p["code"], p["client"], "", "", "") for p in pending]
        rows += [
            (
                "revoked" if b["revoked_at"] else "active",
                b["id"],
                b["name"],
                b["fingerprint"],
                (b["created_at"] or "")[:16].replace("T", " "),
                (b["last_used_at"] or "never")[:16].replace("T", " "),
            )
            for b in browsers
        ]
        headers = ["state", "code or id", "browser", "key", "paired", "last used"]
        print(table(headers, rows) if rows else "No browser paired yet.")
    elif args.action == "revoke":
        browsers = daemon.call("GET", "/browsers")["browsers"]
        matches = [b for b in browsers if args.code in (b["id"], b["name"]) and not b["revoked_at"]]
        if len(matches) != 1:
            raise CliError(
                f"{len(matches)} active browsers match {args.code!r}; "
                "give the id from `mecene pair list`"
            )
        daemon.call("DELETE", f"/browsers/{matches[0]['id']}")
        print(f"Revoked {matches[0]['name']!r}.")
    return 0


def cmd_browser(args: argparse.Namespace) -> int:
    """Let the browsers start Mécène's native messaging host (or no longer)."""
    data = DataDir(args.data_dir)
    if args.action == "uninstall":
        removed = nativeinstall.uninstall(data)
        for path in removed:
            print(f"removed {path}")
        if not removed:
            print("Nothing to remove: the browsers' host was not installed here.")
        return 0
    done = nativeinstall.install(data)
    for browser, written in done:
        print(f"{browser.name:<14} {written or 'not found'}")
    if not any(written for _b, written in done):
        print(
            "No browser found: install Chromium, Google Chrome or Firefox, then run "
            "`mecene browser install` again."
        )
        return 1
    print("Browsers may now start Mécène's host for Mécène's extension (and no other).")
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    daemon = Daemon(DataDir(args.data_dir))
    changes: dict[str, Any] = {}
    if args.amount is not None:
        changes["budget_cents"] = euros_to_cents(args.amount)
    if args.min_click is not None:
        changes["min_click_cents"] = (
            None if args.min_click == "none" else euros_to_cents(args.min_click)
        )
    if args.cap is not None:
        changes["cap_cents"] = None if args.cap == "none" else euros_to_cents(args.cap)
    if args.unlinkable is not None:
        changes["unlinkable"] = args.unlinkable == "on"
    if args.browser_gifts is not None:
        changes["browser_gift_limit_cents"] = euros_to_cents(args.browser_gifts)
    if changes:
        settings = daemon.call("PATCH", "/settings", changes)["settings"]
    else:
        settings = daemon.call("GET", "/settings")["settings"]
    print(f"budget     {money(settings['budget_cents'])} a month")
    if settings["min_click_cents"] is not None:
        print(f"min/click  {money(settings['min_click_cents'])}")
    if settings["cap_cents"] is not None:
        print(f"cap        {money(settings['cap_cents'])}")
    print(f"paid as    {PAID_AS[bool(settings.get('unlinkable'))]}")
    print(
        f"browsers   may give {money(settings['browser_gift_limit_cents'])} a day; "
        "beyond, you confirm each gift on the dashboard"
    )
    return 0


# How a month's money goes to the hub (the `unlinkable` setting).
PAID_AS = {
    True: "tokens the hub cannot tie to you (unlinkable on)",
    False: "a settlement that names each creator you paid (unlinkable off)",
}
UNLINKABLE_HELP = (
    "pay months and gifts as tokens the hub cannot tie to you (default on for a new wallet)"
)

METHOD_NAMES = {"bank": "bank transfer", "card": "card", "paypal": "PayPal"}


def practice(status: dict[str, Any]) -> str:
    """What a balance at the embedded hub is, said beside it."""
    return " (practice hub on this computer: simulated money)" if status.get("practice_hub") else ""


def cmd_deposit(args: argparse.Namespace) -> int:
    """Put money on the hub account: the fee is shown, and asked about, first."""
    daemon = Daemon(DataDir(args.data_dir))
    amount = euros_to_cents(args.amount)
    quote = daemon.call("POST", "/deposits/quote", {"method": args.method, "amount_cents": amount})
    print(
        f"Deposit {money(quote['amount_cents'])} by {METHOD_NAMES[args.method]}: "
        f"fee {money(quote['fee_cents'])}, you pay {money(quote['total_cents'])}."
    )
    if not args.yes and not confirm("Confirm?", "confirm the fee with --yes"):
        print("Nothing deposited.")
        return 1
    out = daemon.call(
        "POST",
        "/deposits",
        {
            "id": str(uuid.uuid4()),
            "method": args.method,
            "amount_cents": amount,
            "fee_cents": quote["fee_cents"],
        },
    )
    status = daemon.call("GET", "/status")
    print(f"Deposited. Balance: {money(out['balance_cents'])}{practice(status)}.")
    return 0


def creator_status(me: dict[str, Any]) -> str:
    """What a creator has at the hub, each amount with why it is where it is."""
    got = me["received"]
    fee = "no fee: a non-profit" if me["nonprofit"] else f"fee {money(got['fee_cents'])} (10 %)"
    balance, least = me["creator_balance_cents"], me["min_withdrawal_cents"]
    if me["withdrawable_cents"]:
        can = f"withdrawable: mecene creator withdraw EUROS, from {money(least)}"
    elif balance:
        can = f"not withdrawable yet: the smallest withdrawal is {money(least)}"
    else:
        can = "nothing to withdraw"
    lines = [
        f"received   {money(got['gross_cents'])} from givers, {fee}, "
        f"{money(got['net_cents'])} to you",
        f"balance    {money(balance)} ({can})",
    ]
    for w in me["withheld"]:
        lines.append(
            f"withheld   {money(w['cents'])} for {w['month']}: paid to you once you give at "
            f"least {money(me['min_giving_cents'])} in {w['month']} (to receive, you must give)"
        )
    for e in me["escrow"]:
        net, fee = e.get("net_cents", e["cents"]), e.get("fee_cents", 0)
        given = f" ({money(e['cents'])} given, less the hub's fee {money(fee)})" if fee else ""
        lines.append(
            f"in escrow  {money(net)} under {e['key']}{given}: yours once you prove the key "
            "(mecene creator verify ID)"
        )
    lines.append(f"keys       {', '.join(me['keys']) or 'none proved yet'}")
    return "\n".join(lines)


def cmd_creator(args: argparse.Namespace) -> int:
    """The person as a creator: prove keys, get a flattr id, see and withdraw earnings."""
    daemon = Daemon(DataDir(args.data_dir))
    if args.action == "status":
        me = daemon.call("GET", "/hub/account")
        if args.json:
            print(json.dumps(me, indent=2))
            return 0
        print(creator_status(me))
        return 0
    if args.action == "flattr-id":
        out = daemon.call("POST", "/hub/flattr-ids", {})
        issued = "just issued" if out.get("new") else "issued before: it stays the same"
        print(f"Your flattr id: {out['key']} ({issued}). Put this in the <head> of your pages:")
        print(f"  {out['meta']}")
        return 0
    if not args.value:
        raise CliError(f"creator {args.action} needs a value")
    if args.action == "claim":
        claim = daemon.call("POST", "/hub/claims", {"key": args.value})
        where = claim.get("where") or "the place the hub names for this key"
        print(f"Claim {claim['id']} for {claim['key']}. Put this token in {where}:")
        print(f"  {claim['token']}")
        print(f"then run: mecene creator verify {claim['id']}")
        return 0
    if args.action == "verify":
        out = daemon.call("POST", f"/hub/claims/{args.value}/verify", {})
        print(f"{out['claim']['key']} is yours (proof: {out['claim']['proof']}).")
        for key in out.get("also_proved") or []:
            print(f"The same page proves {key}: it is yours too.")
        if out["released_cents"]:
            print(f"{money(out['released_cents'])} that waited in escrow is released to you.")
        return 0
    amount = euros_to_cents(args.value)
    out = daemon.call("POST", "/hub/withdrawals", {"id": str(uuid.uuid4()), "amount_cents": amount})
    print(f"Withdrawn: {money(out['withdrawal']['amount_cents'])} (simulated payout).")
    return 0


def cmd_autostart(args: argparse.Namespace) -> int:
    if args.action == "enable":
        path = autostart.enable(Path(args.data_dir), args.systemd)
        print(f"Mécène will start when you log in ({path}).")
        print("It starts locked: unlock it from the tray or with `mecene unlock`.")
    elif args.action == "disable":
        removed = autostart.disable(args.systemd)
        print(f"Removed {removed}." if removed else "Mécène was not set to start at login.")
    else:
        paths = autostart.enabled()
        print("\n".join(f"enabled: {p}" for p in paths) or "not enabled")
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    """Print a one-time login link to the dashboard, and open it in the browser."""
    out = Daemon(DataDir(args.data_dir)).call("POST", "/dashboard/links", {})
    print(out["url"])
    print(f"(valid once, for {out['expires_in'] // 60} minutes)")
    if not args.print_only and not launch.open_link(out["url"]):
        print("No browser could be started: open the link above yourself.")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    daemon = Daemon(DataDir(args.data_dir))
    passphrase = read_passphrase(twice=False)
    with Progress("Unlocking (the key derivation takes a moment)"):
        daemon.call("POST", "/wallet/unlock", {"passphrase": passphrase})
    print("Wallet unlocked.")
    return 0


def cmd_recovery(args: argparse.Namespace) -> int:
    data_dir = DataDir(args.data_dir)
    try:
        with Progress("Opening the wallet"):
            wallet = Wallet.open(data_dir.wallet, read_passphrase(twice=False))
        show_phrase(wallet, first=False)
    except WalletError as exc:
        raise CliError(str(exc)) from None
    return 0


def read_phrase() -> str:
    env = os.environ.get(PHRASE_ENV)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise CliError(f"no recovery phrase: set {PHRASE_ENV} or run from a terminal")
    try:
        return input("Recovery phrase (24 words): ")
    except EOFError:
        print(file=sys.stderr)
        raise CliError("no recovery phrase given") from None


def cmd_backup(args: argparse.Namespace) -> int:
    """One encrypted file of everything local, safe while the daemon runs."""
    data_dir = DataDir(args.data_dir)
    target = Path(args.file).expanduser()
    try:
        with Progress("Opening the wallet"):
            wallet = Wallet.open(data_dir.wallet, read_passphrase(twice=False))
        sizes = backup.take(data_dir, wallet, target)
    except (WalletError, backup.BackupError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror}") from None
    print(f"Backed up {data_dir.root} to {target} ({target.stat().st_size:,} bytes)")
    for name, size in sizes.items():
        print(f"  {name:<14} {size:,} bytes")
    print(
        "It opens with this wallet's passphrase (as it is now) or its recovery phrase: "
        f"`mecene restore --from {target}`."
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """A wallet rebuilt from its recovery phrase, in a data directory with
    none; or (--from FILE) everything local, from a backup."""
    data_dir = DataDir(args.data_dir)
    if args.source is not None:
        return restore_backup(data_dir, Path(args.source).expanduser(), args.replace)
    if data_dir.wallet.exists():
        raise CliError(
            f"a wallet already exists in {data_dir.root}: restore into another --data-dir, "
            "or move that wallet away first"
        )
    try:
        seed = recovery.seed_of(read_phrase())
    except recovery.PhraseError as exc:
        raise CliError(str(exc)) from None
    data_dir.create()
    passphrase = read_passphrase(twice=True, prompt="A new passphrase for this wallet: ")
    try:
        with Progress("Deriving the wallet's key from the passphrase (Argon2id, 64 MiB)"):
            wallet = Wallet.create(data_dir.wallet, passphrase, seed=seed)
    except WalletError as exc:
        raise CliError(str(exc)) from None
    write_atomic(data_dir.records_marker, b"")  # the first start fetches the records
    print(f"Restored the wallet in {data_dir.root}")
    print(f"  account   {wallet.account}")
    print(
        "Start it with `mecene run`: your balance, creator account and flattr id come back "
        "from your hub, and with them, from the records your daemon kept there encrypted, "
        "your settings, subscriptions, receipts, months not yet settled and unspent "
        "tokens. With the practice hub on this computer (no --hub), its money lived "
        "on the lost disk: only a backup brings it back (`mecene restore --from FILE`)."
    )
    return 0


def restore_backup(data_dir: DataDir, source: Path, replace: bool) -> int:
    if data_dir.wallet.exists() and not replace:
        raise CliError(
            f"a wallet already exists in {data_dir.root}: add --replace to put the backup in "
            "its place (what it replaces is kept aside), or restore into another --data-dir"
        )
    data_dir.create()
    phrase = os.environ.get(PHRASE_ENV)
    try:
        with DaemonLock(data_dir.lock), Progress("Checking the backup"):
            if phrase is not None:
                seed = recovery.seed_of(phrase)
                new = read_passphrase(twice=True, prompt="A new passphrase for this wallet: ")
                opened, aside = backup.restore(source, data_dir, seed=seed, new_passphrase=new)
            else:
                opened, aside = backup.restore(
                    source, data_dir, passphrase=read_passphrase(twice=False)
                )
    except AlreadyRunning:
        raise CliError(
            f"a daemon is running on {data_dir.root}: stop it first (`mecene lock` is not enough)"
        ) from None
    except (recovery.PhraseError, backup.BackupError, WalletError) as exc:
        raise CliError(str(exc)) from None
    # What changed since the backup and was kept at the hub is merged in at
    # the next start (daemon/records/).
    write_atomic(data_dir.records_marker, b"")
    print(f"Restored the backup of {opened.created_at} into {data_dir.root}")
    print(f"  account   {opened.account}")
    for name in sorted(opened.files):
        print(f"  {name}")
    if aside is not None:
        print(f"What it replaced is kept in {aside}.")
    if "hub/ledger.json" in opened.files:
        print(
            "Its practice hub (simulated money) was made elsewhere: once the original copy "
            f"is gone for good, make this one the live one with `mecene hub adopt --data-dir "
            f"{data_dir.root}`."
        )
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    """A new passphrase: through the running daemon, which holds the wallet
    (its next save would otherwise write the old key back), else in place,
    with the data directory's lock held so that no daemon starts meanwhile."""
    data_dir = DataDir(args.data_dir)
    old = read_passphrase(twice=False, prompt="Current passphrase: ")
    new = read_passphrase(twice=True, env_name=NEW_PASSPHRASE_ENV, prompt="New passphrase: ")
    lock = DaemonLock(data_dir.lock)
    try:
        lock.acquire()
    except AlreadyRunning:
        with Progress("Changing the passphrase (the key derivation takes a moment)"):
            Daemon(data_dir).call(
                "POST", "/wallet/passphrase", {"passphrase": old, "new_passphrase": new}
            )
        print("Passphrase changed.")
        return 0
    try:
        with Progress("Changing the passphrase (the key derivation takes a moment)"):
            Wallet.open(data_dir.wallet, old).change_passphrase(new)
    except WalletError as exc:
        raise CliError(str(exc)) from None
    finally:
        lock.release()
    print("Passphrase changed.")
    return 0


def cmd_hub(args: argparse.Namespace) -> int:
    """`mecene hub adopt`: this copy's practice hub becomes the live one."""
    data_dir = DataDir(args.data_dir)
    hub_dir = data_dir.root / "hub"
    if not (hub_dir / "hub.db").exists():
        raise CliError(f"{data_dir.root} has no practice hub (it runs with --hub URL)")
    try:
        with DaemonLock(data_dir.lock):
            practicehub.adopt(hub_dir)
    except AlreadyRunning as exc:
        raise CliError(str(exc)) from None
    print(
        f"The practice hub in {data_dir.root} is the live one now. Never start another copy "
        "of this data directory: it would spend the same deposit again."
    )
    return 0


def cmd_clock(args: argparse.Namespace) -> int:
    """`mecene clock confirm`: the computer's date is right; held months close."""
    clock = Daemon(DataDir(args.data_dir)).call("POST", "/clock/confirm", {})["clock"]
    if clock["state"] == "ok":
        print("Date confirmed: the months that ended are closed.")
    else:
        print(f"Date confirmed; still: {clock['message']}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    Daemon(DataDir(args.data_dir)).call("POST", "/wallet/lock", {})
    print("Wallet locked.")
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=lambda s: __import__("pathlib").Path(s).expanduser(),
        default=default_data_dir(),
        help="data directory (default: $MECENE_DATA_DIR or ~/.local/share/mecene)",
    )
    p = argparse.ArgumentParser(prog="mecene", description="Mécène: flattr anything on the web.")
    sub = p.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", parents=[common], help="create the encrypted wallet")
    init.add_argument("--budget", help="monthly budget in euros (at least 2)")
    init.add_argument("--time-zone", help="IANA time zone for months (default: the system's)")
    init.add_argument("--unlinkable", choices=("on", "off"), help=UNLINKABLE_HELP)
    init.set_defaults(func=cmd_init)

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the daemon",
        description=(
            "Run the daemon on 127.0.0.1: the local API the extension, the CLI and the "
            "dashboard use, the tray icon, month closing and settling with the hub. The "
            "wallet is unlocked with $MECENE_PASSPHRASE or a prompt; started with neither, "
            "the daemon runs locked until `mecene unlock`. Created on the first run if "
            "there is none yet (--budget, --time-zone, --unlinkable)."
        ),
    )
    run.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the local API's port on 127.0.0.1 (default {DEFAULT_PORT}; the extension's "
        "options page must name the same)",
    )
    run.add_argument(
        "--no-tray", action="store_true", help="no tray icon (without a display there is none)"
    )
    run.add_argument(
        "--verbose", action="store_true", help="log every request (never a token or passphrase)"
    )
    run.add_argument(
        "--budget", help="monthly budget in euros, for a wallet created on this first run"
    )
    run.add_argument(
        "--time-zone",
        help="IANA time zone of the months, for a wallet created on this first run "
        "(default: the system's)",
    )
    run.add_argument(
        "--unlinkable",
        choices=("on", "off"),
        help=UNLINKABLE_HELP + ", for a wallet created on this first run",
    )
    run.add_argument(
        "--hub",
        default=os.environ.get("MECENE_HUB") or None,
        help="the hub's URL (default $MECENE_HUB; else a hub embedded in this process, "
        "on loopback, its data in DATA_DIR/hub)",
    )
    run.add_argument(
        "--relay",
        default=os.environ.get("MECENE_RELAY") or None,
        help="an Oblivious HTTP relay for the hub (default $MECENE_RELAY): token "
        "redemptions and key fetches go through it, so the hub does not see this "
        "computer's address with them",
    )
    run.add_argument(
        "--hub-port",
        type=int,
        default=0,
        help="the embedded hub's port on 127.0.0.1 (default: any free port)",
    )
    run.set_defaults(func=cmd_run)

    give = sub.add_parser(
        "give",
        parents=[common],
        help="give one creator an amount, outside the month's split",
        description="A direct transfer from your balance at the hub, on top of the month's "
        "budget: shows what the creator receives after the fee, then asks.",
    )
    give.add_argument("key", help="the creator key, e.g. liberapay:alice or domain:example.org")
    give.add_argument("amount", help="in euros, at least 1 (e.g. 20 or 7.50)")
    give.add_argument("--yes", action="store_true", help="do not ask to confirm")
    give.add_argument("--note", help="a note to yourself, kept by the daemon, never sent")
    give.set_defaults(func=cmd_give)

    status = sub.add_parser("status", parents=[common], help="the month at a glance")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    pair = sub.add_parser("pair", parents=[common], help="approve, list, revoke browsers")
    pair.add_argument("action", choices=["approve", "deny", "list", "revoke"])
    pair.add_argument("code", nargs="?", default="", help="the 6-digit code, or a browser id")
    pair.add_argument("--json", action="store_true")
    pair.set_defaults(func=cmd_pair)

    browser = sub.add_parser(
        "browser",
        parents=[common],
        help="let Chromium, Chrome and Firefox reach the daemon (native messaging)",
        description="Write (install) or remove (uninstall) the native messaging host's "
        "manifests of the browsers found, for Mécène's extension only.",
    )
    browser.add_argument("action", choices=["install", "uninstall"])
    browser.set_defaults(func=cmd_browser)

    sub.add_parser(
        "native-host",
        help="the browsers' host: browsers start it (with their own arguments), people do not",
    )

    bud = sub.add_parser("budget", parents=[common], help="show or set the monthly budget")
    bud.add_argument("amount", nargs="?", help="new monthly budget in euros")
    bud.add_argument("--min-click", help="minimum per click in euros, or 'none'")
    bud.add_argument("--cap", help="cap on the month's spend in euros, or 'none'")
    bud.add_argument(
        "--unlinkable",
        choices=("on", "off"),
        help="pay months as tokens the hub cannot tie to you (from the next month's close)",
    )
    bud.add_argument(
        "--browser-gifts",
        help="what paired browsers may give a day, in euros (default 20); beyond it, each "
        "gift waits for your confirmation on the dashboard",
    )
    bud.set_defaults(func=cmd_budget)

    dep = sub.add_parser("deposit", parents=[common], help="put money on your hub account")
    dep.add_argument("amount", help="euros, e.g. 20 or 12.50")
    dep.add_argument("--method", choices=["bank", "card", "paypal"], default="bank")
    dep.add_argument("--yes", action="store_true", help="accept the fee without asking")
    dep.set_defaults(func=cmd_deposit)

    creator = sub.add_parser("creator", parents=[common], help="receive: keys, earnings")
    creator.add_argument("action", choices=["status", "flattr-id", "claim", "verify", "withdraw"])
    creator.add_argument(
        "value", nargs="?", default="", help="a key to claim, a claim id, or euros to withdraw"
    )
    creator.add_argument("--json", action="store_true")
    creator.set_defaults(func=cmd_creator)

    months = sub.add_parser("months", parents=[common], help="every month and its state")
    months.add_argument("--json", action="store_true")
    months.set_defaults(func=cmd_months)

    sync = sub.add_parser("sync", parents=[common], help="send closed months to the hub now")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(func=cmd_sync)

    auto = sub.add_parser("autostart", parents=[common], help="start Mécène when you log in")
    auto.add_argument("action", choices=["enable", "disable", "status"])
    auto.add_argument(
        "--systemd", action="store_true", help="a systemd user unit instead of a desktop entry"
    )
    auto.set_defaults(func=cmd_autostart)

    opener = sub.add_parser("open", parents=[common], help="open the dashboard (one-time link)")
    opener.add_argument("--print", dest="print_only", action="store_true", help="only print it")
    opener.set_defaults(func=cmd_open)

    rec = sub.add_parser(
        "recovery", parents=[common], help="show the recovery phrase (the passphrase is asked)"
    )
    rec.add_argument("action", choices=("show",))
    rec.set_defaults(func=cmd_recovery)
    restore = sub.add_parser(
        "restore",
        parents=[common],
        help="bring a wallet back: from its recovery phrase, or --from a backup",
        description=(
            "Rebuild the wallet from its 24-word recovery phrase ($MECENE_RECOVERY_PHRASE or "
            "a prompt) with a new passphrase, in a data directory that has no wallet. With "
            "--from FILE, everything local from a `mecene backup` file, checked whole before "
            "anything is replaced; it opens with the backed-up wallet's passphrase, or with "
            "the recovery phrase ($MECENE_RECOVERY_PHRASE) and a new passphrase."
        ),
    )
    restore.add_argument("--from", dest="source", metavar="FILE", help="a `mecene backup` file")
    restore.add_argument(
        "--replace", action="store_true", help="replace this data directory's files (kept aside)"
    )
    restore.set_defaults(func=cmd_restore)
    clockp = sub.add_parser(
        "clock", parents=[common], help="confirm the date when month closes are held"
    )
    clockp.add_argument("action", choices=("confirm",))
    clockp.set_defaults(func=cmd_clock)
    hubp = sub.add_parser(
        "hub",
        parents=[common],
        help="the practice hub: adopt a copied data directory as the live one",
    )
    hubp.add_argument("action", choices=("adopt",))
    hubp.set_defaults(func=cmd_hub)
    devs = sub.add_parser(
        "devices",
        parents=[common],
        help="this wallet on your other computers: add, join, list, remove",
        description=(
            "`add` shows a one-time code; on the other computer, `join CODE --hub URL` makes "
            "it a device of this wallet (one budget, one month). `list` shows every device "
            "and when it was last seen; `remove NAME` stops one for good."
        ),
    )
    devs.add_argument("action", choices=("add", "join", "list", "remove"))
    devs.add_argument("what", nargs="*", help="the code (join) or the device (remove)")
    devs.add_argument("--name", help="this computer's name (add, join)")
    devs.add_argument("--hub", help="the hub's URL (join)")
    devs.add_argument(
        "--phrase",
        action="store_true",
        help="join with the recovery phrase ($MECENE_RECOVERY_PHRASE or a prompt), not a code",
    )
    devs.add_argument("--json", action="store_true")
    devs.set_defaults(func=cmd_devices)
    back = sub.add_parser(
        "backup",
        parents=[common],
        help="one encrypted file of everything local (safe while the daemon runs)",
    )
    back.add_argument("file", help="where to write it")
    back.set_defaults(func=cmd_backup)
    passwd = sub.add_parser(
        "passwd",
        parents=[common],
        help="change the wallet's passphrase",
        description=(
            "The current passphrase ($MECENE_PASSPHRASE or a prompt), then the new one "
            "($MECENE_NEW_PASSPHRASE or a prompt, twice)."
        ),
    )
    passwd.set_defaults(func=cmd_passwd)
    unlock = sub.add_parser("unlock", parents=[common], help="unlock the running daemon's wallet")
    unlock.set_defaults(func=cmd_unlock)
    lock = sub.add_parser("lock", parents=[common], help="lock the running daemon's wallet")
    lock.set_defaults(func=cmd_lock)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["native-host"]:
        # The browser adds arguments of its own (the caller's origin, a window).
        return nativehost.main()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    if args.command == "pair" and args.action in ("approve", "deny", "revoke") and not args.code:
        print(f"mecene: pair {args.action} needs a code or id", file=sys.stderr)
        return 2
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a closed pipe is caught
        return code
    except (CliError, ApiError) as exc:
        print(f"mecene: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `mecene status | head -5`: the reader has all it wanted. Python's
        # own flush at exit must not fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
