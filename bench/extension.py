"""The extension's cost on page loads, in Debian's Chromium and Firefox ESR.

Page load with the extension against without it: the same pages loaded in
two profiles of each browser, alternately; the median load time of each, with the
browser against itself as the noise floor. Target: under 2 % slower.
(Toolbar shortcut to confirmed flattr, in the real popup: bench/popup.py.)

    .venv/bin/python bench/extension.py [--pages 60] [--rounds 3] [--browsers firefox]
        [--design toggle|profiles]

Firefox's figure is paired, in one profile (`--design toggle`, the
default): the extension is installed and uninstalled between blocks of page
loads, in the order with, without, without, with, with, without… (ABBA), so
that each page's load with it is paired with its load without it in the next
block, and the blocks where nothing changed (without-without, with-with) give
the noise floor. The figure is the median of the per-page ratios with a
bootstrap 95 % interval. Two profiles differ by a few per cent between
themselves (measured: `--design profiles` loads each page in one profile
with the extension and two without, one after another), which hid a 2 %
difference. Firefox installs and uninstalls over WebDriver BiDi
(webExtension.install/uninstall). Chromium's figure is still two profiles
taking turns: the DevTools protocol loads an unpacked extension
(Extensions.loadUnpacked) but cannot uninstall it ("could not find
extension"), and an incognito context, which has no extension, differs from
a profile in more than that.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.support.browser import CHROMIUM_ARGS, PageServer, built, chromium_path  # noqa: E402
from tests.support.daemons import mecene, start  # noqa: E402
from tests.support.firefox import headed_firefox  # noqa: E402

LOAD = "() => performance.getEntriesByType('navigation')[0].loadEventEnd"


def article(i: int) -> str:
    paragraphs = "".join(
        f"<p>Paragraph {j} of post {i}, <a href='/x{j}'>link</a>.</p>" for j in range(40)
    )
    return (
        f"<!doctype html><html><head><title>Post {i}</title>"
        f'<meta name="flattr:id" content="author{i % 7}">'
        f'<link rel="monetization" href="https://wallet.example/a{i}"></head>'
        f"<body><article><h1>Post {i}</h1>{paragraphs}</article></body></html>"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--browsers", default="chromium,firefox")
    parser.add_argument("--rounds", type=int, default=3, help="ABBA rounds (profiles: loads)")
    parser.add_argument(
        "--design",
        "--firefox-design",
        dest="firefox_design",
        choices=("toggle", "profiles"),
        default="toggle",
        help="Firefox: toggle, one profile, the extension on and off (default); profiles",
    )
    args = parser.parse_args()
    pages = {("blog.example.org", f"/post/{i}"): article(i) for i in range(args.pages)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = PageServer(pages, work).start()
        browsers = args.browsers.split(",")
        try:
            if "chromium" in browsers:
                report("chromium", *chromium_loads(work, server, args.pages))
            if "firefox" in browsers and args.firefox_design == "toggle":
                toggled_report("firefox", *firefox_toggled(work, server, args.pages, args.rounds))
            elif "firefox" in browsers:
                paired_report("firefox", *firefox_loads(work, server, args.pages, args.rounds))
        finally:
            server.stop()
    return 0


def chromium_loads(work: Path, server: PageServer, n: int) -> tuple[list[float], list[float]]:
    """The same pages in two Chromium profiles, one with the extension (paired
    with a real daemon), taking turns."""
    data = work / "mecene"
    assert mecene(data, "init").returncode == 0
    daemon = start(data)
    loads_with: list[float] = []
    loads_without: list[float] = []
    try:
        token = daemon.pair()
        with sync_playwright() as p:
            ext_args = [
                *CHROMIUM_ARGS,
                f"--disable-extensions-except={built('chromium')}",
                f"--load-extension={built('chromium')}",
            ]
            with_ext = p.chromium.launch_persistent_context(
                str(work / "with"), executable_path=chromium_path(), headless=True, args=ext_args
            )
            without = p.chromium.launch_persistent_context(
                str(work / "without"),
                executable_path=chromium_path(),
                headless=True,
                args=CHROMIUM_ARGS,
            )
            sw = (
                with_ext.service_workers[0]
                if with_ext.service_workers
                else with_ext.wait_for_event("serviceworker")
            )
            sw.evaluate(
                f"chrome.storage.local.set({{settings: {{port: {daemon.port}}}, token: '{token}'}})"
            )
            # Page loads first, on their own: the two browsers take turns,
            # each going first on every other page, and no flattr runs meanwhile.
            for rnd in range(2):
                for i in range(n):
                    url = server.url("blog.example.org", f"/post/{i}")
                    pair = [(without, loads_without), (with_ext, loads_with)]
                    for ctx, out in pair if (i + rnd) % 2 else pair[::-1]:
                        page = ctx.new_page()
                        page.goto(url, wait_until="load")
                        out.append(page.evaluate(LOAD))
                        page.close()
            with_ext.close()
            without.close()
    finally:
        daemon.stop()
    return loads_with, loads_without


def firefox_loads(
    work: Path, server: PageServer, n: int, rounds: int = 3
) -> tuple[list[float], list[float], list[float]]:
    """The same pages in three Firefox ESR profiles: one with the extension
    (installed, not paired: detection runs, no flattr) and two without it,
    the second of which is the noise floor (the browser against itself).
    Each page is loaded in all three, one after another, in an order that
    rotates; the lists are aligned by page visit, for paired ratios."""
    loads: tuple[list[float], list[float], list[float]] = ([], [], [])
    hosts = ["blog.example.org"]
    # Firefox rounds performance timings (to a millisecond or more) to hinder
    # fingerprinting: too coarse for a 2 % difference on a 60 ms load.
    precise = {"privacy.reduceTimerPrecision": False}
    with (
        headed_firefox(work / "ff-with", hosts, prefs=precise) as with_ext,
        headed_firefox(work / "ff-without", hosts, install="none", prefs=precise) as without,
        headed_firefox(work / "ff-other", hosts, install="none", prefs=precise) as other,
    ):
        browsers = [with_ext, without, other]
        for rnd in range(rounds):
            for i in range(n):
                url = server.url("blog.example.org", f"/post/{i}")
                shift = (i + rnd) % 3
                for k in [(shift + j) % 3 for j in range(3)]:
                    browsers[k].driver.call("goto", url=url, wait="load")
                    value = browsers[k].driver.call("page", expression=f"({LOAD})()")
                    loads[k].append(float(value))
    return loads


def firefox_toggled(
    work: Path, server: PageServer, n: int, rounds: int
) -> tuple[list[float], list[float]]:
    """One Firefox ESR profile; the extension (installed, not paired:
    detection runs after each load, no flattr) on and off between blocks of
    the same n page loads, ABBA: 2 × `rounds` blocks of each. The ratios
    (with / without) of the pairs of blocks across an install or uninstall,
    and (same / same) across the boundaries where nothing changed."""
    hosts = ["blog.example.org"]
    precise = {"privacy.reduceTimerPrecision": False}
    cost: list[float] = []
    floor: list[float] = []
    extension = str(built("firefox"))
    with headed_firefox(work / "ff-toggle", hosts, install="none", prefs=precise) as ff:

        def block(start: int) -> list[float]:
            out = [0.0] * n
            for j in range(n):
                i = (start + j) % n
                url = server.url("blog.example.org", f"/post/{i}")
                ff.driver.call("goto", url=url, wait="load")
                out[i] = float(ff.driver.call("page", expression=f"({LOAD})()"))
            return out

        ext_id: str | None = None
        previous: tuple[bool, list[float]] | None = None
        states = [k % 4 in (0, 3) for k in range(4 * rounds)]  # with, without, without, with…
        for k, with_ext in enumerate(states):
            if with_ext and ext_id is None:
                installed = ff.driver.call(
                    "installExt", path=extension, origin=server.url("blog.example.org", "/")
                )
                assert installed["reads"], "the extension may not read the pages: no detection"
                ext_id = str(installed["id"])
            elif not with_ext and ext_id is not None:
                ff.driver.call("uninstallExt", id=ext_id)
                ext_id = None
            block(k * 7)  # the first loads after a change: settling, not measured
            loads = block(k * 7)
            if previous is not None:
                before_with, before = previous
                if before_with == with_ext:
                    floor += [a / b for a, b in zip(loads, before, strict=True)]
                else:
                    on, off = (loads, before) if with_ext else (before, loads)
                    cost += [a / b for a, b in zip(on, off, strict=True)]
            previous = (with_ext, loads)
    return cost, floor


def bootstrap_interval(values: list[float], rng: random.Random) -> tuple[float, float]:
    """The 95 % bootstrap interval of the median of `values` (ratios), as
    differences from 1: 2,000 resamples."""
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(2000))
    return medians[50] - 1, medians[1949] - 1


def toggled_report(browser: str, cost: list[float], floor: list[float]) -> None:
    rng = random.Random(7)
    med, (low, high) = statistics.median(cost) - 1, bootstrap_interval(cost, rng)
    aa, (aa_low, aa_high) = statistics.median(floor) - 1, bootstrap_interval(floor, rng)
    print(
        f"{browser}: with the extension, paired in one profile  {med:+.1%} "
        f"(95 % interval {low:+.1%} to {high:+.1%}; {len(cost)} pairs; target < +2 %)"
    )
    print(
        f"{browser}: nothing changed between the blocks (A/A)  {aa:+.1%} "
        f"(95 % interval {aa_low:+.1%} to {aa_high:+.1%}; {len(floor)} pairs)"
    )


def paired_report(
    browser: str, loads_with: list[float], loads_without: list[float], loads_other: list[float]
) -> None:
    """The median of per-page ratios (with / without), with a bootstrap 95 %
    interval, beside the same for the two profiles without the extension."""
    ratios = [w / o for w, o in zip(loads_with, loads_without, strict=True)]
    against_other = [w / a for w, a in zip(loads_with, loads_other, strict=True)]
    floor = [a / o for a, o in zip(loads_other, loads_without, strict=True)]
    rng = random.Random(7)
    cost, (low, high) = statistics.median(ratios) - 1, bootstrap_interval(ratios, rng)
    other = statistics.median(against_other) - 1
    other_low, other_high = bootstrap_interval(against_other, rng)
    aa, (aa_low, aa_high) = statistics.median(floor) - 1, bootstrap_interval(floor, rng)
    print(
        f"{browser}: page load without the extension   median "
        f"{statistics.median(loads_without):6.1f} ms   ({len(ratios)} paired loads)"
    )
    print(
        f"{browser}: with the extension, paired         {cost:+.1%} "
        f"(95 % interval {low:+.1%} to {high:+.1%}; target < +2 %)"
    )
    print(
        f"{browser}: with, against the second without   {other:+.1%} "
        f"(95 % interval {other_low:+.1%} to {other_high:+.1%})"
    )
    print(
        f"{browser}: without against without (A/A)     {aa:+.1%} "
        f"(95 % interval {aa_low:+.1%} to {aa_high:+.1%})"
    )


def report(browser: str, loads_with: list[float], loads_without: list[float]) -> None:
    med_with, med_without = statistics.median(loads_with), statistics.median(loads_without)
    # The noise floor: the same browser against itself (even against odd loads).
    aa = statistics.median(loads_without[0::2]) / statistics.median(loads_without[1::2]) - 1
    print(
        f"{browser}: page load without the extension   median {med_without:6.1f} ms   "
        f"({len(loads_without)} loads; without against itself: {aa:+.1%})"
    )
    print(
        f"{browser}: page load with the extension      median {med_with:6.1f} ms   "
        f"({(med_with / med_without - 1):+.1%}, target < +2 %)"
    )


if __name__ == "__main__":
    sys.exit(main())
