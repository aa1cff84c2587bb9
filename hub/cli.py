"""`mecene-hub`: run a hub, migrate its database, and the operator's commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from mecene.amounts import euros
from mecene.time import MONTH_RE

from . import tokens as hub_tokens
from .db import DatabaseRefused, DatabaseUrlError, migrate, open_database, revision
from .runner import HubSettings, close_hub, default_data_dir, open_hub, start_hub
from .service import HubConfig


class NoHub(Exception):
    """An operator's command named a hub that does not exist."""


def settings(args: argparse.Namespace, *, create: bool = True) -> HubSettings:
    """The hub the command names. Only `serve` and `migrate` create one: the
    operator's commands refuse a hub that is not there (with no --data-dir, a
    typo or a missing variable would otherwise make an empty hub in the home
    directory and report on it)."""
    data = Path(args.data_dir) if args.data_dir else default_data_dir()
    url = args.db or f"sqlite:///{data / 'hub.db'}"
    if not create and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise NoHub(
                f"no hub at {path}: give the --data-dir (or --db) of an existing hub "
                "(`mecene-hub serve` creates one)"
            )
    elif url.startswith("sqlite:///"):
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
    return HubSettings(
        database_url=url,
        key_file=Path(args.key_file) if args.key_file else data / "hub.key",
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8740),
        proof_via=getattr(args, "proof_via", None),
        config=HubConfig(
            escrow_months=getattr(args, "escrow_months", 12),
            must_give=not getattr(args, "no_must_give", False),
        ),
    )


async def _serve(args: argparse.Namespace) -> int:
    running = await start_hub(settings(args))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mecene-hub listening on http://{args.host}:{running.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.stop()
    return 0


async def _migrate(args: argparse.Namespace) -> int:
    engine = open_database(settings(args).database_url)
    try:
        await migrate(engine)
        print(f"database at revision {await revision(engine)}")
    finally:
        await engine.dispose()
    return 0


async def _operate(args: argparse.Namespace) -> int:
    hub = await open_hub(settings(args, create=False), create=False)
    try:
        if args.command == "nonprofit":
            await hub.set_nonprofit(args.account, not args.off)
            print(f"{args.account}: {'not ' if args.off else ''}a non-profit (no fee)")
        elif args.command == "expire-escrow":
            print(f"returned {euros(await hub.expire_escrow())} to givers")
        elif args.command == "payouts":
            if not MONTH_RE.match(args.month):
                raise SystemExit("mecene-hub: a month is YYYY-MM")
            report = await hub.payouts(args.month)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                print(f"{'account':<44} {'allocations':>11} {'gross':>12} {'fee':>10} {'net':>12}")
                for c in report["creators"]:
                    print(
                        f"{c['account']:<44} {c['allocations']:>11} {euros(c['gross_cents']):>12}"
                        f" {euros(c['fee_cents']):>10} {euros(c['net_cents']):>12}"
                    )
                for state, cents in sorted(report["totals_cents"].items()):
                    print(f"{state}: {euros(cents)}")
        elif args.command == "run-payouts":
            done = await hub.run_payouts()
            print(
                f"{done.routed_allocations} allocations routed ({euros(done.routed_cents)}), "
                f"{euros(done.released_cents)} of withheld money released, "
                f"in {done.chunks} chunks"
            )
        elif args.command == "tokens":
            months = await hub_tokens.report(hub.tokens)
            if args.json:
                print(json.dumps(months, indent=2))
            else:
                print(
                    f"{'month':<8} {'issued':>16} {'redeemed':>16} {'unredeemed':>16} "
                    f"{'held':>12}  redeemable until"
                )
                for m in months:
                    cells = [
                        f"{m[k]['tokens']:>5} {euros(m[k]['cents']):>10}"
                        for k in ("issued", "redeemed", "unredeemed")
                    ]
                    until = "expired" if m["expired"] else m["redeemable_until"][:10]
                    print(
                        f"{m['month']:<8} {' '.join(cells)} {euros(m['held_cents']):>12}  {until}"
                    )
        elif args.command == "check":
            books = await hub.books()
            print(json.dumps(books))
            return 0 if not any(books.values()) else 1
    finally:
        await close_hub(hub)
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="sqlite:///PATH or postgresql://USER@HOST/DB")
    common.add_argument("--data-dir", help="where the default SQLite file and key live")
    common.add_argument("--key-file", help="the hub's signing key (shared by its processes)")
    p = argparse.ArgumentParser(prog="mecene-hub", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="serve the hub's API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8740)
    serve.add_argument("--escrow-months", type=int, default=12)
    serve.add_argument("--no-must-give", action="store_true", help="pay creators who give nothing")
    serve.add_argument("--proof-via", help="fetch every proof from this server (development)")
    sub.add_parser("migrate", parents=[common], help="bring the database schema up to date")
    np = sub.add_parser("nonprofit", parents=[common], help="mark an account a non-profit")
    np.add_argument("account")
    np.add_argument("--off", action="store_true")
    sub.add_parser("expire-escrow", parents=[common], help="return expired escrow to givers")
    pay = sub.add_parser("payouts", parents=[common], help="what each creator got for a month")
    pay.add_argument("month")
    pay.add_argument("--json", action="store_true")
    sub.add_parser(
        "run-payouts",
        parents=[common],
        help="route accepted settlements' money now (serve does it by itself)",
    )
    tok = sub.add_parser(
        "tokens",
        parents=[common],
        help="unlinkable tokens by month: issued, redeemed, the money still held for them",
    )
    tok.add_argument("--json", action="store_true")
    sub.add_parser("check", parents=[common], help="check the books (sums to zero)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "serve":
            return asyncio.run(_serve(args))
        if args.command == "migrate":
            return asyncio.run(_migrate(args))
        return asyncio.run(_operate(args))
    except (DatabaseUrlError, DatabaseRefused, NoHub, ValueError, OSError) as exc:
        print(f"mecene-hub: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
