"""The platforms Mécène knows, read from their one table, mecene/data/platforms.toml
(DESIGN.md, "One table of platforms"). The extension's copy, extension/platforms.js,
is generated from the same file by scripts/make-webdata."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class EmbedScript:
    """An official widget script: `src` matches its address (group 1 is the
    name, unless `attributes` on the element carry it)."""

    src: str
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Platform:
    scheme: str
    name: str
    hosts: tuple[str, ...]
    readable: str
    funding: bool
    handle_readable: str | None = None
    profile: str | None = None
    prefix: str | None = None
    sub: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    button_images: tuple[str, ...] = ()
    embed_scripts: tuple[EmbedScript, ...] = ()
    widget_scripts: tuple[str, ...] = ()
    proof_page: str | None = None
    handle_proof_page: str | None = None
    owner_field: str | None = None
    owner_block: str | None = None
    sources: tuple[str, ...] = ()


def _platform(scheme: str, raw: dict[str, Any]) -> Platform:
    tuples = ("hosts", "sub", "routes", "button_images", "widget_scripts", "sources")
    fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in raw.items()}
    fields["embed_scripts"] = tuple(
        EmbedScript(e["src"], tuple(e.get("attributes", ()))) for e in raw.get("embed_scripts", ())
    )
    return Platform(scheme=scheme, **fields)


def table_text() -> str:
    return (resources.files("mecene") / "data" / "platforms.toml").read_text()


@functools.cache
def _table() -> dict[str, Any]:
    return tomllib.loads(table_text())


@functools.cache
def platforms() -> dict[str, Platform]:
    """Every platform, by its key's scheme, in the table's order."""
    return {scheme: _platform(scheme, raw) for scheme, raw in _table()["platforms"].items()}


def readable(scheme: str, value: str) -> str | None:
    """How a platform's key reads on every screen (extension/keys.js, `readableKey`)."""
    platform = platforms().get(scheme)
    if platform is None:
        return None
    if value.startswith("@") and platform.handle_readable:
        return platform.handle_readable + value
    return platform.readable + value


def proof_page(scheme: str, value: str) -> str | None:
    """The page the hub reads a key's proof from, its value in it (quoted)."""
    platform = platforms().get(scheme)
    if platform is None:
        return None
    if value.startswith("@") and platform.handle_proof_page:
        return platform.handle_proof_page.format(value)
    return platform.proof_page.format(value) if platform.proof_page else None


def proved() -> dict[str, Platform]:
    """The platforms whose keys the hub can prove (the table names a proof page)."""
    return {s: p for s, p in platforms().items() if p.proof_page}


_ID = re.compile(r"^[A-Za-z0-9._~\-]{1,200}$")


def profile_key(host: str, path: str) -> str | None:
    """The key a profile address names, by the table's rules, as the extension
    reads it (content.js, `profileKey`): `liberapay:alice` for liberapay.com/alice
    or /alice/donate; None for a platform's own route (/about), another page of
    it (a shop item, /user?u=) or a host no platform has a profile on."""
    host = host.lower().removeprefix("www.")
    platform = next((p for p in platforms().values() if p.profile and host in p.hosts), None)
    if platform is None:
        return None
    parts = [p for p in path.split("/") if p]
    if platform.prefix and parts[:1] == [platform.prefix]:
        parts = parts[1:]
    elif parts and parts[0].lower() in platform.routes:
        return None
    if not 1 <= len(parts) <= 2:
        return None
    if len(parts) == 2 and parts[1].lower() not in platform.sub:
        return None
    return f"{platform.scheme}:{parts[0]}" if _ID.match(parts[0]) else None


_WRITER = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$")


def shared_hosts() -> dict[str, dict[str, Any]]:
    """The publishing hosts shared by many writers (the table's `shared_hosts`)."""
    return dict(_table().get("shared_hosts", {}))


def site_key(host: str, path: str) -> str | None:
    """The `site:` key of a writer's own part of a publishing host shared by
    many writers (the table's `shared_hosts`), as the extension reads it
    (content.js, `siteKey`): `site:medium.com/@alice` for medium.com/@alice,
    any page under it or alice.medium.com; `site:alice.substack.com` for any
    page of alice.substack.com; None elsewhere."""
    host = host.lower().removeprefix("www.")
    for shared in shared_hosts().values():
        base = str(shared["host"])
        prefix = shared.get("prefix")
        if host == base:
            if prefix is None:
                continue  # the host's own pages: its writers are its subdomains
            first = next((p for p in path.split("/") if p), "")
            if first.startswith(prefix) and _WRITER.match(first[len(prefix) :]):
                return f"site:{host}/{first.lower()}"
        elif shared.get("subdomains") and host.endswith("." + base):
            name = host[: -len(base) - 1]
            if not _SUBDOMAIN.match(name) or name in shared.get("reserved", ()):
                continue
            return f"site:{base}/{prefix}{name}" if prefix is not None else f"site:{host}"
    return None


@dataclass(frozen=True)
class SiteProof:
    """Where the hub reads a `site:` key's proof: `page`, and in it either the
    head's description (`field` "description": the platform renders it from
    what the writer alone wrote) or `<meta name="mecene:claim">` (`field`
    "meta": the writer alone edits the page's head); `where` tells the writer."""

    page: str
    field: str
    where: str


def site_proof(value: str) -> SiteProof | None:
    """For the `site:` key `site:VALUE`, where the hub reads its proof; None
    where the table names nowhere."""
    host, _, part = value.partition("/")
    for shared in shared_hosts().values():
        page = shared.get("proof_page")
        if not page:
            continue
        base = str(shared["host"])
        if host == base and part:
            fill = part  # medium.com/@NAME: the part after the host
        elif host.endswith("." + base) and not part and shared.get("prefix") is None:
            fill = host  # NAME.ghost.io: the writer's own host
        else:
            continue
        return SiteProof(
            str(page).format(fill),
            str(shared.get("proof_field", "description")),
            str(shared.get("owner_field", "")),
        )
    return None
