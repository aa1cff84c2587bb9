"""Battery: Hypothesis against every route's body, and against detectCreators.

No body, however strange, may get a 5xx or crash the daemon; no page,
however broken, may make detectCreators throw or report a key the daemon
would refuse. Examples: a few hundred in the suite, 10,000+ with
MECENE_LARGE=1 (docs/RELIABILITY.md).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.server import ROUTES
from mecene.keys import creator_key
from mecene.time import FrozenClock
from tests.extension.test_detect import CASES
from tests.support.browser import CHROMIUM_ARGS, add_detector, chromium_path
from tests.support.constants import battery_size
from tests.support.daemons import App

ROUTE_LIST = sorted(
    {(r.method, r.path) for r in ROUTES if r.path.startswith("/api/v1")}  # type: ignore[attr-defined]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=15), inner, max_size=6)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "id",
        "url",
        "creator",
        "creators",
        "weight",
        "title",
        "months",
        "budget_cents",
        "code",
        "passphrase",
        "method",
        "amount_cents",
        "fee_cents",
        "key",
        "private",
        "charity",
        "client",
    ]
)
# Objects with the routes' own field names are likelier to go deep.
NEAR = st.dictionaries(FIELDS, JSON, max_size=6)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    clock = FrozenClock(dt.datetime(2026, 10, 15, tzinfo=dt.UTC))
    app = App(tmp_path_factory.mktemp("fuzz") / "mecene", clock)
    yield app
    app.close()


def _path(template: str, draw: Any) -> str:
    out = template
    for name in ("click_id", "sub_id", "token_id", "pairing_id", "month", "claim_id"):
        out = out.replace("{" + name + "}", draw)
    return out


@settings(
    max_examples=battery_size(300, 10_000),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTE_LIST),
    body=st.one_of(JSON, NEAR),
    segment=st.text(max_size=30),
    raw=st.binary(max_size=200),
    use_raw=st.booleans(),
)
def test_no_body_gets_a_server_error(
    daemon: App, route: tuple[str, str], body: Any, segment: str, raw: bytes, use_raw: bool
) -> None:
    method, template = route
    from urllib.parse import quote

    path = _path(template, quote(segment, safe="") or "x")
    payload = raw if use_raw else json.dumps(body).encode()
    if method == "POST" and template.endswith("/wallet/lock"):
        return  # locking is legitimate: it would only make every later example 423
    status = daemon.send(method, path, payload)
    assert status < 500, (method, path, payload[:200])


# -- detectCreators ------------------------------------------------------------------------

sync_api = pytest.importorskip("playwright.sync_api")

TAGS = st.sampled_from(["meta", "link", "a", "article", "div", "span", "section", "li", "base"])
ATTRS = st.sampled_from(
    ["name", "content", "rel", "href", "class", "data-flattr-uid", "itemprop", "id", "title"]
)
VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "flattr:id",
            "monetization",
            "fediverse:creator",
            "payment",
            "me",
            "author",
            "FlattrButton",
            "javascript:alert(1)",
            "https://liberapay.com/x",
            "https://github.com/sponsors/y",
            "$wallet.example/z",
            "@a@b.example",
            "https://www.youtube.com/channel/UCx",
            "comment",
            "../x",
            "data:text/html,x",
            "https://ko-fi.com/",
            "a" * 600,
        ]
    ),
)


@st.composite
def html_pages(draw: Any) -> str:
    """Random markup from the detector's own vocabulary, or a fixture page cut and spliced."""
    if draw(st.booleans()):
        _host, _path, page, _expected = draw(st.sampled_from(list(CASES.values())))
        cut = draw(st.integers(0, len(page)))
        junk = draw(st.text(max_size=40))
        return page[:cut] + junk + page[cut + draw(st.integers(0, 30)) :]
    parts = []
    for _ in range(draw(st.integers(0, 25))):
        tag = draw(TAGS)
        attrs = " ".join(
            f'{draw(ATTRS)}="{draw(VALUES).replace(chr(34), "&quot;")}"'
            for _ in range(draw(st.integers(0, 3)))
        )
        close = draw(st.booleans())
        parts.append(
            f"<{tag} {attrs}>" + (draw(st.text(max_size=10)) + f"</{tag}>" if close else "")
        )
    return (
        "<!doctype html><html><head>"
        + "".join(parts[: len(parts) // 2])
        + "</head><body>"
        + "".join(parts[len(parts) // 2 :])
        + "</body></html>"
    )


@pytest.fixture(scope="module")
def detector_page() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        page.goto("about:blank")
        add_detector(page)
        yield page
        browser.close()


@settings(
    max_examples=battery_size(150, 10_000),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    html=html_pages(),
    url=st.sampled_from(
        [
            "https://blog.example.org/p",
            "https://a.github.io/",
            "https://www.youtube.com/watch?v=x",
            "https://github.com/someone/repo",
        ]
    ),
)
def test_detect_creators_never_throws_on_broken_pages(
    detector_page: Any, html: str, url: str
) -> None:
    result = detector_page.evaluate(
        """([html, url]) => {
            const doc = new DOMParser().parseFromString(html, "text/html");
            const base = doc.createElement("base");
            base.href = url;
            doc.head.prepend(base);
            try {
              return {ok: detectCreators(doc)};
            } catch (e) {
              return {error: String(e && e.stack || e)};
            }
        }""",
        [html, url],
    )
    assert "error" not in result, result.get("error")
    for c in result["ok"]:
        assert set(c) <= {"key", "scope", "source", "label", "url"}
        assert c["scope"] in ("page", "element")
        assert creator_key(c["key"]) == c["key"], c  # the daemon takes every key as it is
