"""PROTOCOL.md documents every route the daemon serves."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from daemon.http import ROUTES

PROTOCOL = Path(__file__).resolve().parent.parent / "PROTOCOL.md"


def test_every_route_is_documented() -> None:
    text = PROTOCOL.read_text()
    routes = [r for r in ROUTES if isinstance(r, web.RouteDef)]
    assert len(routes) >= 20
    missing = [f"{r.method} {r.path}" for r in routes if f"`{r.method} {r.path}`" not in text]
    assert missing == []


def test_every_error_code_is_documented() -> None:
    from daemon.security import STATUS_BY_CODE

    text = PROTOCOL.read_text()
    assert [code for code in STATUS_BY_CODE if f"`{code}`" not in text] == []
