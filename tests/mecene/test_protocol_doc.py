"""PROTOCOL.md documents every route the daemon and the hub serve, and every error code."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from daemon.server import ROUTES

PROTOCOL = Path(__file__).resolve().parents[2] / "PROTOCOL.md"


def test_every_route_is_documented() -> None:
    text = PROTOCOL.read_text()
    routes = [r for r in ROUTES if isinstance(r, web.RouteDef)]
    assert len(routes) >= 20
    # A route's pattern ({name:[a-z.]*}) is documented by its name ({name}).
    paths = [(r.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", r.path)) for r in routes]
    missing = [f"{m} {p}" for m, p in paths if f"`{m} {p}`" not in text]
    assert missing == []


def test_every_error_code_is_documented() -> None:
    from mecene.errors import STATUS

    text = PROTOCOL.read_text()
    assert [code for code in STATUS if f"`{code}`" not in text] == []


def test_every_hub_route_and_error_is_documented() -> None:
    from hub.errors import HUB_CODES
    from hub.http import ROUTES as HUB_ROUTES

    text = PROTOCOL.read_text()
    hub_part = text[text.index("## The hub's API") :]
    assert [f"{m} {p}" for m, p, _h in HUB_ROUTES if f"`{m} {p}`" not in hub_part] == []
    assert [code for code in sorted(HUB_CODES) if f"`{code}`" not in hub_part] == []


def test_every_extension_message_is_documented() -> None:
    """Each message in the router's two tables (background.js) has a row in
    PROTOCOL.md, and the router holds nothing but its tables: every handler
    lives in the part of the worker it belongs to."""
    from tests.support.browser import EXTENSION

    source = (EXTENSION / "background.js").read_text()
    doc = (Path(__file__).resolve().parents[2] / "PROTOCOL.md").read_text()
    section = doc[doc.index("## The extension's messages") :]
    names: list[str] = []
    for table in ("const popupHandlers = {", "const handlers = {"):
        body = source[source.index(table) : source.index("\n};", source.index(table))]
        names += re.findall(r"^  (\w+): \w+\.\w+,$", body, flags=re.M)
    assert len(names) >= 10
    assert [n for n in names if f"| `{n}` |" not in section] == []
    assert re.findall(r"^(?:async )?function ", source, flags=re.M) == []
