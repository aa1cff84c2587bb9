"""The tray icon: the month at a glance and the few actions a person needs.

It runs as its own process (`python -m daemon.tray --data-dir D`), started
by `mecene run` when there is a display and stopped with it, and talks to
the daemon over the local API with the admin token, like the CLI: a crash
of the GUI toolkit cannot take the daemon (and its flattrs) down with it.

The icon's colour says the state — purple: unlocked; grey: locked; amber:
subscriptions paused; red: a problem (the hub unreachable, a month refused,
the daemon gone). The menu: the month's spend against the budget, the
number of flattrs and the value of each, the balance; each pending pairing
code with Approve and Deny; each gift a browser asked for past its daily
limit, with Confirm and Decline; pause or resume the subscriptions' automatic
clicks; the dashboard; lock; quit (which stops the daemon too).

`TrayModel` is the pure part (what to show for what the API says), tested
without a display; the pystray part draws it. On Linux the backend with
real menus is GTK (`PYSTRAY_BACKEND=gtk`, the default here) or
AppIndicator where a desktop offers it.
"""

from __future__ import annotations

import argparse
import calendar
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from mecene import amounts, keys

from . import launch
from .client import ApiError, LocalApi
from .files import DataDir, has_display

log = logging.getLogger("mecene.tray")
REFRESH_SECONDS = float(os.environ.get("MECENE_TRAY_REFRESH_SECONDS", "10"))
MAX_FLATTR_ENTRIES = 15  # a menu, not a list: the dashboard has them all
NOTICE_SECONDS = 120.0
COLOURS = {
    "unlocked": (107, 63, 160),
    "locked": (136, 136, 136),
    "paused": (208, 138, 0),
    "problem": (198, 40, 40),
}


def euros(cents: int | None) -> str:
    return "?" if cents is None else amounts.euros(cents)


@dataclass
class TrayModel:
    """What the daemon said, last time we asked; and what to show for it."""

    status: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    hub: dict[str, Any] | None = None
    months: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)  # gifts past the browsers' limit
    clicks: list[dict[str, Any]] = field(default_factory=list)  # the month's live flattrs
    error: str | None = None
    notice: str | None = None  # what the tray itself has to say (a browser that did not start)

    def flattr_entries(self) -> list[str]:
        """The month's flattrs, each with what it comes to now (its weight
        times the value of a weight of 1), the largest first; at most
        MAX_FLATTR_ENTRIES, then how many more."""
        if self.status is None or not self.clicks:
            return []
        per = int(self.status.get("per_click_cents") or 0)
        ranked = sorted(self.clicks, key=lambda c: (-int(c["weight"]), c["created_at"]))
        out = []
        for c in ranked[:MAX_FLATTR_ENTRIES]:
            name = c.get("title") or keys.readable_key(c["creator"])
            weight = int(c["weight"])
            shown = f"{name[:48]}…" if len(name) > 49 else name
            out.append(
                f"{shown} — {euros(per * weight)}" + (f" (weight {weight})" if weight > 1 else "")
            )
        if len(ranked) > MAX_FLATTR_ENTRIES:
            out.append(
                f"… and {len(ranked) - MAX_FLATTR_ENTRIES} more (the dashboard lists them all)"
            )
        return out

    def waiting_gifts(self) -> list[tuple[str, str]]:
        """(transfer id, its menu entry) of each gift waiting for the person."""
        return [
            (t["id"], f"Gift {euros(t['cents'])} to {t['creator']} — from a browser")
            for t in self.waiting
        ]

    @property
    def state(self) -> str:
        if self.error is not None or self.status is None:
            return "problem"
        if self.status.get("locked"):
            return "locked"
        if self.problem() is not None:
            return "problem"
        if self.settings and self.settings.get("subscriptions_paused"):
            return "paused"
        return "unlocked"

    def clock_held(self) -> str | None:
        """Why months do not close (the clock), as the menu says it, or None."""
        clock = (self.status or {}).get("clock") or {}
        if clock.get("state") != "held" or not clock.get("message"):
            return None
        text = str(clock["message"])
        return f"Months wait: {text[0].lower()}{text[1:]}."

    def problem(self) -> str | None:
        if self.error is not None:
            return self.error
        held = self.clock_held()
        if held is not None:
            return held
        if self.hub is not None and self.hub.get("removed"):
            return "This computer was removed from the wallet: it sends nothing to the hub."
        if self.hub is not None and self.hub.get("reachable") is False:
            return "The hub is unreachable: months wait to be sent."
        # Settled by another of the person's computers: not a problem, it
        # resolves itself (daemon/sendpolicy.py); said in `told`.
        quiet = (None, "hub_unreachable", "settled_elsewhere")
        refused = [m for m in self.months if m.get("sync_error") not in quiet]
        if refused:
            m = refused[0]
            return (
                f"{m['month']} was not accepted by the hub ({m['sync_error'].replace('_', ' ')})."
            )
        return None

    def lines(self) -> list[str]:
        """The menu's information lines, top to bottom."""
        if self.status is None:
            return [self.error or "Connecting to the Mécène daemon…"]
        s = self.status
        if s.get("locked"):
            return ["The wallet is locked."]
        flattrs = "1 flattr" if s["clicks"] == 1 else f"{s['clicks']} flattrs"
        year, month = s["month"].split("-")
        given = f" + {euros(s['given_cents'])} given" if s.get("given_cents") else ""
        out = [
            f"{calendar.month_name[int(month)]} {year}: {euros(s['spend_cents'])} spent "
            f"of {euros(s['budget_cents'])}{given}",
            self._each(flattrs, s),
            f"Balance {euros(s['balance_cents'])}"
            + (" (practice money)" if s.get("practice_hub") else "")
            + (
                f", and {euros(s['gift_tokens_cents'])} in tokens for gifts"
                if s.get("gift_tokens_cents")
                else ""
            ),
        ]
        if s.get("warning") == "balance_short":
            out.append(f"Short of {euros(s.get('short_cents'))}: deposit to give it all")
        out += self.told()
        problem = self.problem()
        if problem:
            out.append(problem)
        if self.notice:
            out.append(self.notice)
        return out

    def told(self) -> list[str]:
        """What another of the person's computers did to the last month:
        settled it, or sent flattrs that came after it was settled and moved
        on (older months' say so in the dashboard and `mecene months`)."""
        out = []
        for m in self.months[:2]:  # newest first: the open month and the last
            if m.get("sync_error") == "settled_elsewhere":
                out.append(f"{m['month']}: settled by another of your computers")
            late = [x for x in m.get("moved") or [] if x.get("from_month") == m["month"]]
            if late:
                count = "1 flattr" if len(late) == 1 else f"{len(late)} flattrs"
                to = late[0].get("to_month") or "this month"
                out.append(f"{count} of {m['month']} came after it was settled: moved to {to}")
        return out[:2]

    def _each(self, flattrs: str, s: dict[str, Any]) -> str:
        """ "3 flattrs, 1.66 € each" when they all weigh 1; with weights, a
        flattr of weight 2 is worth two of weight 1: said so."""
        if any(int(c.get("weight", 1)) != 1 for c in self.clicks):
            return f"{flattrs}, {euros(s['per_click_cents'])} for each of weight 1"
        return f"{flattrs}, {euros(s['per_click_cents'])} each"

    @property
    def paused(self) -> bool:
        return bool(self.settings and self.settings.get("subscriptions_paused"))


class DaemonClient:
    """The local API (daemon/client.py), found afresh for each call: the
    daemon may have been started again on another port."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = DataDir(data_dir)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return LocalApi(self._data_dir).call(method, path, body)

    def daemon_pid(self) -> int | None:
        try:
            return LocalApi(self._data_dir).pid
        except ApiError:
            return None


def fetch(client: DaemonClient) -> TrayModel:
    """Ask the daemon for everything the tray shows; a model with `error` if it cannot."""
    model = TrayModel()
    try:
        model.status = client.call("GET", "/status")
        model.pending = client.call("GET", "/pairings")["pending"]
        if not model.status.get("locked"):
            model.settings = client.call("GET", "/settings")["settings"]
            model.months = client.call("GET", "/months")["months"]
            transfers = client.call("GET", "/transfers")["transfers"]
            model.waiting = [t for t in transfers if t["state"] == "waiting"]
            model.clicks = client.call("GET", "/clicks")["clicks"]
        try:
            model.hub = client.call("GET", "/hub")["hub"]
        except ApiError:
            model.hub = None
    except ApiError as exc:
        model.status = None
        model.error = str(exc)
    return model


def icon_image(state: str) -> Any:
    """A 64×64 icon: a disc in the state's colour with a white "M"."""
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((2, 2, 62, 62), fill=(*COLOURS[state], 255))
    draw.line([(18, 46), (18, 18), (32, 34), (46, 18), (46, 46)], fill="white", width=6)
    return image


class Tray:
    def __init__(self, client: DaemonClient) -> None:
        # Late: pystray picks its backend when imported (PYSTRAY_BACKEND, set
        # by main() once it knows whether GTK is there).
        import pystray  # noqa: PLC0415

        self.pystray = pystray
        self.client = client
        self.model = TrayModel()
        self.notice: tuple[str, float] | None = None  # (what, until: monotonic)
        self._shown: tuple[str, tuple[str, ...]] | None = None
        self._stop = threading.Event()
        self.icon = pystray.Icon(
            "mecene", icon_image("problem"), "Mécène", menu=pystray.Menu(self._items)
        )

    # -- the menu --------------------------------------------------------------------

    def _items(self) -> Sequence[Any]:
        item, separator = self.pystray.MenuItem, self.pystray.Menu.SEPARATOR
        model = self.model
        items: list[Any] = [item(line, None, enabled=False) for line in model.lines()]
        items.append(separator)
        for p in model.pending:
            code, client = p["code"], p.get("client", "a browser")
            items.append(
                item(
                    f"Pairing {code} — {client}",
                    self.pystray.Menu(
                        item("Approve", self._action("POST", "/pairings/approve", {"code": code})),
                        item("Deny", self._action("POST", "/pairings/deny", {"code": code})),
                    ),
                )
            )
        for transfer_id, entry in model.waiting_gifts():
            items.append(
                item(
                    entry,
                    self.pystray.Menu(
                        item(
                            "Confirm", self._action("POST", f"/transfers/{transfer_id}/confirm", {})
                        ),
                        item("Decline", self._action("DELETE", f"/transfers/{transfer_id}", None)),
                    ),
                )
            )
        if model.clock_held() is not None:
            items.append(
                item(
                    "The date is right: close the months",
                    self._action("POST", "/clock/confirm", {}),
                )
            )
        if model.pending or model.waiting or model.clock_held() is not None:
            items.append(separator)
        unlocked = model.status is not None and not model.status.get("locked")
        entries = model.flattr_entries()
        if unlocked and entries:
            items.append(
                item(
                    "This month's flattrs",
                    self.pystray.Menu(*(item(e, None, enabled=False) for e in entries)),
                )
            )
        if unlocked:
            items.append(
                item(
                    "Pause subscriptions",
                    self._action(
                        "PATCH", "/settings", lambda: {"subscriptions_paused": not model.paused}
                    ),
                    checked=lambda _item: self.model.paused,
                )
            )
        items.append(item("Open dashboard", self._open_dashboard, default=True))
        if unlocked:
            items.append(item("Lock wallet", self._action("POST", "/wallet/lock", {})))
        elif model.status is not None:
            items.append(item("Unlock… (in the dashboard)", self._open_dashboard))
        items.append(separator)
        items.append(item("Quit Mécène", self._quit))
        return items

    def _action(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | Callable[[], dict[str, Any]] | None,
    ) -> Callable[..., None]:
        def run(*_args: Any) -> None:
            try:
                self.client.call(method, path, body() if callable(body) else body)
            except ApiError as exc:
                log.warning("%s %s: %s", method, path, exc)
            self.refresh()

        return run

    def _open_dashboard(self, *_args: Any) -> None:
        try:
            url = self.client.call("POST", "/dashboard/links", {})["url"]
        except ApiError as exc:
            log.warning("no dashboard link: %s", exc)
            return
        if not launch.open_link(url):
            # Said in the menu for a while: the link itself is one-time and
            # short-lived, and cannot be copied from a menu.
            log.warning("no browser could be started for the dashboard")
            self.notice = (
                "No browser could be started: run `mecene open` for a link",
                time.monotonic() + NOTICE_SECONDS,
            )
            self.refresh()

    def _quit(self, *_args: Any) -> None:
        pid = self.client.daemon_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)  # the daemon stops, and stops us
        self.stop()

    # -- keeping it current ------------------------------------------------------------

    def refresh(self) -> None:
        self.model = fetch(self.client)
        if self.notice is not None and time.monotonic() < self.notice[1]:
            self.model.notice = self.notice[0]
        codes = (
            tuple(f"pairing {p['code']}" for p in self.model.pending)
            + tuple(entry for _id, entry in self.model.waiting_gifts())
            + tuple(f"flattr {e}" for e in self.model.flattr_entries())
        )
        shown = (self.model.state, (*self.model.lines(), *codes))
        if shown != self._shown:
            # What the menu shows, logged when it changes (the tests read it).
            self._shown = shown
            self.icon.icon = icon_image(self.model.state)
            self.icon.title = f"Mécène — {shown[1][0]}"
            log.info("tray %s: %s", shown[0], " | ".join(shown[1]))
        self.icon.update_menu()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(REFRESH_SECONDS)

    def run(self) -> None:
        def setup(icon: Any) -> None:
            icon.visible = True
            threading.Thread(target=self._poll, name="mecene-tray-poll", daemon=True).start()

        try:
            self.icon.run(setup)
        except Exception as exc:
            # pystray's GTK clean-up asks the session's notification service to
            # hide a notification (we never show one); where no such service
            # runs, that raises GLib.Error after the icon has gone.
            if "org.freedesktop.Notifications" not in str(exc):
                raise
            log.info("tray closed (no notification service on this session)")

    def stop(self) -> None:
        self._stop.set()
        self.icon.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mecene-tray")
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not has_display():
        print("mecene-tray: no display", file=sys.stderr)
        return 2
    try:
        # Probed: GTK through PyGObject (an optional extra) gives real menus.
        import gi  # noqa: F401, PLC0415

        os.environ.setdefault("PYSTRAY_BACKEND", "gtk")
    except ImportError:
        log.warning("no PyGObject: the tray icon has no menu (pip install 'mecene[tray]')")
    try:
        tray = Tray(DaemonClient(args.data_dir))
    except Exception as exc:  # no GTK, no X server: say why, in one line
        print(
            f"mecene-tray: cannot show a tray icon ({type(exc).__name__}: {exc})", file=sys.stderr
        )
        return 2
    signal.signal(signal.SIGTERM, lambda *_: tray.stop())
    tray.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
