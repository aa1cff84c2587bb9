"""Real Debian Chromium for tests, and a local web server that answers for any host name.

Chromium resolves every host name to 127.0.0.1 (`--host-resolver-rules`), so a
test page can be served as alice.github.io or www.youtube.com from one local
aiohttp server running in a thread. The server speaks TLS with a throwaway
self-signed certificate (Chromium ignores certificate errors here): sites
such as github.com are HSTS-preloaded and never loaded over plain http.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import functools
import json
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extension"


@functools.cache
def packages() -> Path:
    """The browsers' packages as scripts/package builds them (tools/package.js),
    once per test run: build/chromium/, build/firefox/ and dist/ under the
    returned directory. The browsers load these, not extension/ itself: what
    the tests run is what a person installs."""
    out = Path(tempfile.mkdtemp(prefix="mecene-package-"))
    atexit.register(shutil.rmtree, out, True)
    done = subprocess.run(
        [str(ROOT / "scripts" / "package"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/package failed: {done.stderr or done.stdout}")
    return out


def built(browser: str) -> Path:
    """The unpacked package for `browser` ("chromium" or "firefox")."""
    return packages() / "build" / browser


def package_file(browser: str) -> Path:
    """The package file for `browser`: the Chromium .zip or the Firefox .xpi."""
    (found,) = (packages() / "dist").glob(f"mecene-{browser}-*")
    return found


# What the worker injects into a page, in its order (tabs.js, DETECTOR_FILES):
# the generated lists, then the detector; the suffix rules go first, alone.
DETECTOR_FILES = ("github-reserved.js", "tracking-params.js", "platforms.js", "content.js")


@functools.cache
def _public_suffixes() -> dict[str, str]:
    text = (EXTENSION / "psl.js").read_text()
    return dict(json.loads(text[text.index("= {") + 2 : text.rindex("}") + 1]))


def suffix_script(url: str) -> str:
    """The suffix rules the worker gives a page at `url` before the detector
    (tabs.js, `suffixGroupsFor`: its top-level domain's, those of host names
    its path begins with, and ALWAYS_TLDS')."""
    tabs = (EXTENSION / "tabs.js").read_text()
    always = json.loads(re.search(r"const ALWAYS_TLDS = (\[[^\]]*\]);", tabs).group(1))  # type: ignore[union-attr]
    parts = urllib.parse.urlsplit(url)
    hosts = [parts.hostname or ""]
    hosts += [
        p.lower()
        for p in parts.path.split("/")[1:4]
        if re.fullmatch(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", p)
    ]
    rules = _public_suffixes()
    tlds = [h.rsplit(".", 1)[-1] for h in hosts] + always
    groups = {t: rules[t] for t in tlds if t in rules}
    return f"globalThis.MECENE_PSL = {json.dumps(groups)};"


def add_detector(page: Any) -> None:
    """Load the detector into a Playwright page as the worker injects it."""
    page.add_script_tag(content=suffix_script(page.url))
    for name in DETECTOR_FILES:
        page.add_script_tag(path=str(EXTENSION / name))


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * 127.0.0.1",
    "--ignore-certificate-errors",
]


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mecene-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed: run scripts/test")
    return path


class Redirect(str):
    """A page that answers 302 to this path (on the same host)."""


HANG = object()  # a resource that never answers: the page's load never completes


class PageServer:
    """Serves `pages[(host, path)]` over https on 127.0.0.1, from a thread: HTML
    ("{port}" in it is the server's port), a `Redirect(path)`, or `HANG`
    (answers nothing until the server stops)."""

    def __init__(self, pages: dict[tuple[str, str], Any], tls_dir: Path) -> None:
        self.pages = pages
        self._stopping: asyncio.Event | None = None
        self._tls = self_signed_context(tls_dir)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _page(self, request: web.Request) -> web.Response:
        host = (request.host or "").rsplit(":", 1)[0].lower()
        html = self.pages.get((host, request.path))
        if html is None:
            raise web.HTTPNotFound()
        if html is HANG:
            assert self._stopping is not None
            await self._stopping.wait()
            raise web.HTTPServiceUnavailable()
        if isinstance(html, Redirect):
            raise web.HTTPFound(str(html))
        # "{port}" in a page is the server's port: pages can name their own absolute URLs.
        return web.Response(text=html.replace("{port}", str(self.port)), content_type="text/html")

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> PageServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def url(self, host: str, path: str) -> str:
        return f"https://{host}:{self.port}{path}"

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
