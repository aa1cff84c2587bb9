"""Proving a creator key: the hub fetches a proof from where only its owner can write.

- `domain:SITE`: the token as a line of `https://SITE/.well-known/mecene-claim.txt`,
  or `<meta name="mecene:claim" content="TOKEN">` on `https://SITE/`;
- `payment:URL`, `wm:URL`: the same file at the URL's origin, or (payment) the
  meta tag on the page at URL;
- `fediverse:@USER@HOST`: the token in the profile (summary or a profile
  field) of the actor that WebFinger on HOST names;
- `github:`, `liberapay:`, `opencollective:`, `kofi:`, `patreon:`, `youtube:`:
  the token in a field of the profile that only its owner writes (OWNER_FIELDS),
  never anywhere in the page: profile pages also show what others write
  (supporters' messages, comments, sponsors' names);
- `flattr:ID`: not claimed: the hub issues flattr ids, owned from the start.

Fetching is hostile territory (server-side request forgery): https on port
443 only, no redirects, 5 s and 256 KiB per response, and an address (a
literal, or what a name resolves to, once) that is not public is refused:
not `is_global`, or in DENIED_NETWORKS (IPv6 forms embedding IPv4, NAT64,
site-local, multicast) — unless `via` is set,
which sends every request to one local server instead (tests, and a hub run
for development), with the real host in the Host header.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from mecene import platforms

MAX_BYTES = 256 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=5)
WELL_KNOWN = "/.well-known/mecene-claim.txt"
# From the table of platforms (mecene/data/platforms.toml): the profile page a
# key's proof is read from, and where on it only the owner writes (PROTOCOL.md
# lists the same). A page's head description is rendered by each platform from
# the profile's own description (bio, summary, "about"), never from visitors;
# only the head counts, so markup a visitor manages to put in the body does not.
PROFILE_PAGES = {s: str(p.proof_page) for s, p in platforms.proved().items()}
HEAD_DESCRIPTIONS = ("description", "og:description", "twitter:description")
OWNER_FIELDS = {s: str(p.owner_field) for s, p in platforms.proved().items()}
OWNER_BLOCKS = {s: p.owner_block for s, p in platforms.proved().items() if p.owner_block}
WHERE = {
    "domain": "a line of https://SITE/.well-known/mecene-claim.txt, or "
    '<meta name="mecene:claim" content="TOKEN"> on https://SITE/',
    "payment": "a line of /.well-known/mecene-claim.txt at the link's site, "
    'or <meta name="mecene:claim" content="TOKEN"> on the linked page',
    "wm": "a line of /.well-known/mecene-claim.txt at the wallet address's site",
    "fediverse": "your profile's bio or one of its profile fields",
    **OWNER_FIELDS,
}


def where_to_prove(key: str) -> str:
    """Where the owner of `key` puts a claim's token, in a sentence."""
    scheme, _, value = key.partition(":")
    if scheme == "site":
        proof = platforms.site_proof(value)
        if proof is not None:
            return proof.where
    return WHERE.get(scheme, "nowhere: this kind of key is not claimed")


class _PageParser(HTMLParser):
    """A page read tag by tag, knowing whether it is still in the head: what a
    platform lets a visitor write sits in the body."""

    def __init__(self) -> None:
        super().__init__()
        self.in_head = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.in_head = False
        self.start(tag, dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False
        self.end(tag)

    def start(self, tag: str, a: dict[str, str | None]) -> None:
        pass

    def end(self, tag: str) -> None:
        pass


class _HeadLinks(_PageParser):
    """The head's `<link rel=canonical>` and `og:url` addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def start(self, tag: str, a: dict[str, str | None]) -> None:
        if not self.in_head:
            return
        if tag == "link" and "canonical" in (a.get("rel") or "").lower().split():
            self.urls.append(str(a.get("href") or ""))
        elif tag == "meta" and (a.get("property") or "").lower() == "og:url":
            self.urls.append(str(a.get("content") or ""))


_CHANNEL_URL = re.compile(r"^https://(?:www\.)?youtube\.com/channel/(UC[A-Za-z0-9_-]{22})/?$")


def tied_keys(key: str, page: str) -> list[str]:
    """Other keys of the same creator, as the page that proved `key` names
    them in its head: a YouTube handle's page has its channel's address as
    its canonical link (and og:url), so `youtube:@name` ties `youtube:UC…`.
    Only the head counts, as for the proof itself."""
    scheme, _, value = key.partition(":")
    if scheme != "youtube" or not value.startswith("@"):
        return []
    parser = _HeadLinks()
    parser.feed(page)
    parser.close()
    ids = {m.group(1) for u in parser.urls if (m := _CHANNEL_URL.match(u.strip()))}
    # Two different channels named by one page: neither is tied.
    return [f"youtube:{ids.pop()}"] if len(ids) == 1 else []


class ProofError(Exception):
    """Why a key could not be proved, in one sentence for the person.
    `url` and `why`: an address that could not be read, and why (several
    such are said as one clause: "A and B could not be fetched (…)")."""

    def __init__(self, message: str, url: str | None = None, why: str | None = None) -> None:
        super().__init__(message)
        self.url, self.why = url, why


def unreachable(exc: BaseException) -> str:
    """Why an address could not be fetched, in words."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its name does not resolve"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "its certificate is not valid"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "the connection was refused"
    return type(exc).__name__


def one_sentence(failures: list[ProofError]) -> str:
    """Failures as one sentence; addresses that failed for one reason together."""
    parts: list[str] = []
    grouped: dict[str, list[str]] = {}
    for f in failures:
        if f.url is not None and f.why is not None:
            if f.why not in grouped:
                parts.append(f.why)  # a placeholder, in order
            grouped.setdefault(f.why, []).append(f.url)
        elif str(f) not in parts:
            parts.append(str(f))
    out = []
    for part in parts:
        urls = grouped.get(part)
        if urls is None:
            out.append(part)
        else:
            names = urls[0] if len(urls) == 1 else ", ".join(urls[:-1]) + f" and {urls[-1]}"
            out.append(f"{names} could not be fetched ({part})")
    return "; ".join(out)


# Ranges that `is_global` lets through but that reach somewhere else than the
# public internet: IPv6 forms that embed an IPv4 address (IPv4-compatible,
# NAT64 — which reaches cloud metadata addresses on NAT64 networks — 6to4,
# Teredo), the deprecated site-local range, and multicast.
DENIED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::/96",  # IPv4-compatible, ::a.b.c.d (RFC 4291, deprecated)
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64, well-known prefix (RFC 6052)
        "64:ff9b:1::/48",  # NAT64, local-use prefix (RFC 8215)
        "2002::/16",  # 6to4 (RFC 3056)
        "2001::/32",  # Teredo (RFC 4380)
        "fec0::/10",  # site-local (RFC 3879, deprecated)
        "ff00::/8",  # IPv6 multicast
        "224.0.0.0/4",  # IPv4 multicast
    )
)


def public_address(address: str) -> bool:
    """Whether the hub may connect to `address`: global, and in none of the
    ranges above."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_global and not any(
        ip in net for net in DENIED_NETWORKS if net.version == ip.version
    )


class PublicOnlyResolver(AbstractResolver):
    """Resolves like the system, but refuses addresses that are not public.
    aiohttp connects to the addresses returned here, so a name is resolved
    once and checked where it is used (no second lookup to rebind)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results or not all(public_address(r["host"]) for r in results):
            raise OSError(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


class _ClaimMeta(_PageParser):
    def __init__(self, head_only: bool) -> None:
        super().__init__()
        self.tokens: list[str] = []
        self.head_only = head_only

    def start(self, tag: str, a: dict[str, str | None]) -> None:
        if tag == "meta" and (self.in_head or not self.head_only):
            if (a.get("name") or "").lower() == "mecene:claim" and a.get("content"):
                self.tokens.append(str(a["content"]).strip())


def meta_tokens(html: str, head_only: bool = False) -> list[str]:
    """The `mecene:claim` metas of a page; `head_only`: only before its body
    (where a publishing platform's writers and readers cannot write)."""
    parser = _ClaimMeta(head_only)
    parser.feed(html)
    return parser.tokens


class _OwnerText(_PageParser):
    """The head's description metas, and the text of elements with class `block`."""

    def __init__(self, block: str | None) -> None:
        super().__init__()
        self.block = block
        self.texts: list[str] = []
        self._depth = 0  # > 0 inside a block: how many elements are open in it

    def start(self, tag: str, a: dict[str, str | None]) -> None:
        if tag == "meta" and self.in_head:
            name = (a.get("name") or a.get("property") or "").lower()
            if name in HEAD_DESCRIPTIONS and a.get("content"):
                self.texts.append(str(a["content"]))
        if self._depth:
            self._depth += tag not in _VOID
        elif self.block and self.block in (a.get("class") or "").split():
            self._depth = 1
            self.texts.append("")

    def end(self, tag: str) -> None:
        if self._depth and tag not in _VOID:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.texts[-1] += data


_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())


def owner_texts(scheme: str, body: str) -> list[str]:
    """What the owner of a `scheme:` profile alone wrote, in what its page answered."""
    if scheme == "github":
        try:
            profile = json.loads(body)
        except ValueError:
            return []
        bio = profile.get("bio") if isinstance(profile, dict) else None
        return [bio] if isinstance(bio, str) else []
    parser = _OwnerText(OWNER_BLOCKS.get(scheme))
    parser.feed(body)
    parser.close()
    return parser.texts


Fetch = Callable[[str, str], Awaitable[str]]


class ProofFetcher:
    def __init__(self, via: str | None = None) -> None:
        self.via = via.rstrip("/") if via else None
        self._session: aiohttp.ClientSession | None = None

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = None if self.via else PublicOnlyResolver()
            connector = aiohttp.TCPConnector(resolver=resolver, limit=20)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=TIMEOUT, headers={"User-Agent": "mecene-hub"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str, accept: str = "text/html, text/plain") -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ProofError(f"only https addresses are fetched: {url}")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port not in (None, 443):
            raise ProofError(f"proofs are fetched from port 443 only, not {url}")
        if not self.via and not _public_host(parts.hostname):
            # An IP literal never reaches the resolver: check it here.
            raise ProofError(f"{parts.hostname} is not a public address")
        target, headers = url, {"Accept": accept}
        if self.via:
            target = self.via + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers["Host"] = parts.netloc
        session = await self._get_session()
        try:
            async with session.get(target, headers=headers, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise ProofError(f"{url} answered {resp.status}")
                body = await resp.content.read(MAX_BYTES + 1)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            why = unreachable(exc)
            raise ProofError(f"{url} could not be fetched ({why})", url, why) from None
        if len(body) > MAX_BYTES:
            raise ProofError(f"{url} is larger than {MAX_BYTES // 1024} KiB")
        return body.decode("utf-8", errors="replace")

    async def prove(self, key: str, token: str) -> str:
        """The address where `token` was found for `key`; ProofError if nowhere."""
        return (await self.prove_and_tie(key, token))[0]

    async def prove_and_tie(self, key: str, token: str) -> tuple[str, list[str]]:
        """The address where `token` was found for `key`, and the other keys
        the same page proves are one creator's (a YouTube handle's page names
        its channel id); ProofError if nowhere."""
        scheme, _, value = key.partition(":")
        tried: list[ProofError] = []
        accept = "application/vnd.github+json" if scheme == "github" else "text/html, text/plain"
        for url, check in self._attempts(scheme, value):
            try:
                text = await self.fetch(url, accept)
            except ProofError as exc:
                tried.append(exc)
                continue
            if check(text, token):
                return url, tied_keys(key, text)
            tried.append(ProofError(f"no token at {url}"))
        if scheme == "fediverse":
            return await self._prove_fediverse(value, token), []
        if not tried:
            raise ProofError(f"{scheme}: keys are not claimed by a proof")
        raise ProofError(one_sentence(tried))

    def _attempts(self, scheme: str, value: str) -> list[tuple[str, Callable[[str, str], bool]]]:
        in_file = _token_line
        in_meta = _token_meta

        def in_owner_fields(text: str, token: str) -> bool:
            return any(token in field for field in owner_texts(scheme, text))

        if scheme == "domain":
            return [(f"https://{value}{WELL_KNOWN}", in_file), (f"https://{value}/", in_meta)]
        if scheme in ("payment", "wm"):
            parts = urlsplit(value)
            origin = f"https://{parts.netloc}"
            out: list[tuple[str, Callable[[str, str], bool]]] = [(origin + WELL_KNOWN, in_file)]
            if scheme == "payment" and parts.scheme == "https":
                out.append((value, in_meta))
            return out
        if scheme == "site":
            proof = platforms.site_proof(value)
            if proof is None:
                return []
            check = _token_head_meta if proof.field == "meta" else in_owner_fields
            return [(quote(proof.page, safe=":/@"), check)]
        if scheme in PROFILE_PAGES:
            page = platforms.proof_page(scheme, quote(value, safe="@"))
            return [(str(page), in_owner_fields)]
        return []

    async def _prove_fediverse(self, value: str, token: str) -> str:
        user, _, host = value.lstrip("@").partition("@")
        finger = f"https://{host}/.well-known/webfinger?resource=acct:{quote(user)}@{quote(host)}"
        try:
            doc = json.loads(await self.fetch(finger, "application/jrd+json"))
            actor_url: str = next(
                link["href"]
                for link in doc.get("links", [])
                if link.get("rel") == "self" and "activity+json" in str(link.get("type", ""))
            )
            actor_host = urlsplit(actor_url).hostname
            if actor_host != host:
                raise ProofError(f"the actor of {value} is on another host")
            actor: dict[str, Any] = json.loads(
                await self.fetch(actor_url, "application/activity+json")
            )
        except (ValueError, StopIteration, KeyError, TypeError, AttributeError):
            raise ProofError(f"no fediverse profile found for {value}") from None
        texts = [str(actor.get("summary") or "")]
        for field in actor.get("attachment") or []:
            if isinstance(field, dict):
                texts.append(f"{field.get('name', '')} {field.get('value', '')}")
        if any(token in t for t in texts):
            return actor_url
        raise ProofError(f"the token is not in the profile of {value}")


def _public_host(host: str) -> bool:
    """False for an IP literal that is not public (public_address); names are
    checked when resolved (PublicOnlyResolver)."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return host.lower() not in ("localhost",) and not host.lower().endswith(".localhost")
    return public_address(host)


def _token_line(text: str, token: str) -> bool:
    return any(line.strip() == token for line in text.splitlines())


def _token_meta(text: str, token: str) -> bool:
    return token in meta_tokens(text)


def _token_head_meta(text: str, token: str) -> bool:
    return token in meta_tokens(text, head_only=True)
