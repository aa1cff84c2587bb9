"""The person at the browser, in Chromium or in Firefox: the same few acts
(type an address, click a link, Back, Forward, press the toolbar button, click
into the page) and the same look at the extension's state, so that each
journey in tests/extension/test_extension.py is written once and runs in both browsers.

Chromium: Playwright for the page, the DevTools protocol for the real popup
(tests/support/popup.py). Firefox ESR: WebDriver BiDi through puppeteer-core, the real
shortcut for the popup (tests/support/firefox.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from .firefox import Firefox, headed_firefox
from .popup import Cdp, RealPopup, click_into_page, headed_chromium


class Popup(Protocol):
    def eval(self, expression: str) -> Any: ...
    def text(self, selector: str) -> str: ...
    def wait(self, predicate: str, timeout: float = 15.0) -> None: ...
    def wait_state(self, state: str, timeout: float = 15.0) -> None: ...
    def click(self, selector: str) -> None: ...
    def choose(self, selector: str, value: str) -> None: ...
    def screenshot(self, path: Path) -> bytes: ...


class Person(Protocol):
    name: str
    client: str  # how the browser names itself when it pairs
    home: Path | None  # its HOME (the native messaging hosts' manifests)

    def goto(self, url: str, *, wait: str = "load") -> None: ...
    def click(self, selector: str) -> None: ...
    def back(self) -> None: ...
    def forward(self) -> None: ...
    def url(self) -> str: ...
    def page(self, expression: str) -> Any: ...
    def worker(self, expression: str) -> Any: ...
    def popup(self) -> Popup: ...
    def leave(self, popup: Any) -> None: ...
    def press_shortcut(self) -> None: ...
    def extension_tab(self, suffix: str) -> Any: ...
    def tab_with(self, prefix: str) -> Any: ...

    def wait_page(self, predicate: str, timeout: float = 15.0) -> None: ...


def _wait(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class ChromiumPerson:
    """Chromium with a window, the back/forward cache on, the extension loaded."""

    name = "chromium"
    client = "Chromium on Linux"
    home: Path | None = None

    def __init__(self, x: Any, ctx: Any, cdp: Cdp) -> None:
        self.x = x
        self.ctx = ctx
        self.cdp = cdp

    def tab(self) -> Any:
        return self.ctx.pages[0] if self.ctx.pages else self.ctx.new_page()

    def _worker(self) -> Any:
        workers = self.ctx.service_workers
        return workers[0] if workers else self.ctx.wait_for_event("serviceworker", timeout=15_000)

    def goto(self, url: str, *, wait: str = "load") -> None:
        self.tab().goto(url, wait_until="commit" if wait == "commit" else "load")

    def click(self, selector: str) -> None:
        self.tab().click(selector)

    def back(self) -> None:
        self.tab().go_back(wait_until="commit")

    def forward(self) -> None:
        self.tab().go_forward(wait_until="commit")

    def url(self) -> str:
        return str(self.tab().url)

    def page(self, expression: str) -> Any:
        return self.tab().evaluate(expression)

    def wait_page(self, predicate: str, timeout: float = 15.0) -> None:
        _wait(lambda: self.page(predicate), predicate, timeout)

    def worker(self, expression: str) -> Any:
        """An expression in the extension's service worker (its globals in scope)."""
        return self._worker().evaluate(expression)

    def press_shortcut(self) -> None:
        """The real key press (XTEST), with the browser window focused."""
        self.tab().bring_to_front()
        for window in self.x.xdotool("search", "--onlyvisible", "--class", "chromium").split():
            self.x.xdotool("windowfocus", "--sync", window)
        self.x.xdotool("key", "--clearmodifiers", "alt+shift+m")

    def popup(self) -> RealPopup:
        """The toolbar popup of the active tab (`chrome.action.openPopup()`)."""
        self.tab().bring_to_front()
        return RealPopup.open(self.cdp, self._worker())

    def leave(self, popup: RealPopup) -> None:
        click_into_page(self.x, self.tab())
        popup.wait_closed()

    def extension_tab(self, suffix: str) -> ChromiumTab:
        """The tab showing one of the extension's pages, opened by the extension."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for page in self.ctx.pages:
                if page.url.startswith("chrome-extension://") and page.url.endswith(suffix):
                    return ChromiumTab(self, page)
            self.tab().wait_for_timeout(100)  # lets Playwright take in the new tab
        urls = [page.url for page in self.ctx.pages]
        raise AssertionError(f"no tab shows the extension's {suffix}: {urls}")

    def tab_with(self, prefix: str) -> ChromiumTab:
        """The tab whose address starts with `prefix` (opened by the extension)."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for page in self.ctx.pages:
                if page.url.startswith(prefix):
                    return ChromiumTab(self, page)
            self.tab().wait_for_timeout(100)
        urls = [page.url for page in self.ctx.pages]
        raise AssertionError(f"no tab shows {prefix}: {urls}")


class ChromiumTab:
    def __init__(self, person: ChromiumPerson, page: Any) -> None:
        self.person = person
        self.page = page

    def eval(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def type(self, selector: str, text: str) -> None:
        self.page.bring_to_front()
        self.page.click(selector, click_count=3)
        self.page.keyboard.type(text)

    def click(self, selector: str) -> None:
        self.page.click(selector)

    def close(self) -> None:
        self.page.close()
        self.person.tab().bring_to_front()


class FirefoxPerson:
    """Firefox ESR with a window, the extension installed as an add-on."""

    name = "firefox"
    client = "Firefox on Linux"
    home: Path | None = None

    def __init__(self, firefox: Firefox) -> None:
        self.ff = firefox
        self.driver = firefox.driver

    def goto(self, url: str, *, wait: str = "load") -> None:
        self.driver.call("goto", url=url, wait=wait)

    def click(self, selector: str) -> None:
        self.driver.call("click", selector=selector)

    def back(self) -> None:
        self.driver.call("history", delta=-1)

    def forward(self) -> None:
        self.driver.call("history", delta=1)

    def url(self) -> str:
        return str(self.driver.call("url"))

    def page(self, expression: str) -> Any:
        return self.driver.call("page", expression=expression)

    def wait_page(self, predicate: str, timeout: float = 15.0) -> None:
        _wait(lambda: self.page(predicate), predicate, timeout)

    def worker(self, expression: str) -> Any:
        """An expression in the extension's background page (its globals in
        scope), reached from an extension page of the same add-on."""
        return self.driver.call(
            "ext",
            expression="browser.runtime.getBackgroundPage().then((bg) => "
            f"(function () {{ with (bg) {{ return ({expression}); }} }})())",
        )

    def popup(self) -> Any:
        return self.ff.popup()

    def leave(self, popup: Any) -> None:
        self.ff.leave(popup)

    def press_shortcut(self) -> None:
        self.ff.press_shortcut()

    def extension_tab(self, suffix: str) -> FirefoxTab:
        return FirefoxTab(self, str(self.driver.call("extensionTab", suffix=suffix)))

    def tab_with(self, prefix: str) -> FirefoxTab:
        return FirefoxTab(self, str(self.driver.call("tabWith", prefix=prefix, timeout=30)))


class FirefoxTab:
    def __init__(self, person: FirefoxPerson, context: str) -> None:
        self.driver = person.driver
        self.context = context

    def eval(self, expression: str) -> Any:
        return self.driver.call("tabEval", context=self.context, expression=expression)

    def type(self, selector: str, text: str) -> None:
        self.driver.call("tabType", context=self.context, selector=selector, text=text)

    def click(self, selector: str) -> None:
        self.driver.call("tabClick", context=self.context, selector=selector)

    def close(self) -> None:
        self.driver.call("tabClose", context=self.context)


@contextlib.contextmanager
def person_in(
    browser: str,
    sync_api: Any,
    profile: Path,
    hosts: list[str],
    home: Path | None = None,
    *,
    lasting: Literal["install", "restart"] | None = None,
) -> Iterator[Any]:
    """The person's browser; with `home`, run with that HOME, where `mecene
    browser install` writes the native messaging hosts' manifests.
    `lasting`: the README's lasting install instead of a load for this run —
    "install", the first start (Firefox installs the .xpi for good; Chromium
    starts with nothing, for the test to Load unpacked as a person does),
    "restart", a later start of the same profile, loading nothing."""
    person: Any
    if browser == "chromium":
        install = "command-line" if lasting is None else "profile"
        with headed_chromium(sync_api, profile, home, install=install) as (x, ctx, ws_url):
            cdp = Cdp(ws_url)
            try:
                person = ChromiumPerson(x, ctx, cdp)
                person.home = home
                yield person
            finally:
                cdp.close()
    else:
        how = {None: "temporary", "install": "permanent", "restart": "installed"}[lasting]
        with headed_firefox(profile, hosts, home=home, install=how) as ff:
            person = FirefoxPerson(ff)
            person.home = home
            yield person
