"""Creator keys and things: checking and canonicalising what a browser sends.

A creator key is `scheme:value` (DESIGN.md, "Creator keys"); a thing is its
canonical URL. Both arrive from the browser, which takes them from web pages,
so everything here is treated as hostile: bad values raise ValueError.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from importlib import resources

import ada_url

from .platforms import platforms
from .platforms import profile_key as platform_profile_key
from .platforms import readable as platform_readable
from .platforms import site_key as platform_site_key

MAX_KEY_LENGTH = 512
MAX_URL_LENGTH = 2048

# The platforms' key kinds, from their one table (mecene/data/platforms.toml).
PLATFORM_SCHEMES = frozenset(platforms())
URL_SCHEMES = frozenset({"wm", "payment"})
KEY_SCHEMES = frozenset({"flattr", "fediverse", "domain", "site"}) | PLATFORM_SCHEMES | URL_SCHEMES

_ID_RE = re.compile(r"^[A-Za-z0-9._~\-]{1,200}$")
_YOUTUBE_HANDLE_RE = re.compile(r"^@[A-Za-z0-9_.\-]{3,30}$")
_FEDI_RE = re.compile(r"^@([A-Za-z0-9_.\-]{1,100})@([A-Za-z0-9.\-]{1,253})$")
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)*$"
)
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f<>\"'`]")
# A WHATWG parser silently drops these (tabs, newlines, leading C0 and spaces);
# in what a program sends they are a mistake, so they are refused instead.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]|^\s|\s$")


def check_text(raw: object, what: str) -> str:
    """`raw` as a string of real Unicode text: a lone surrogate (which JSON's
    `\\ud800` can carry) cannot be stored, compared or sent on."""
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"{what} must be a non-empty string")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} holds an unpaired surrogate, which is not text") from None
    return raw


def is_text(value: object) -> bool:
    """Whether every string in a decoded JSON value (keys too) is real text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(is_text(v) for v in value)
    if isinstance(value, dict):
        return all(is_text(k) and is_text(v) for k, v in value.items())
    return True


@functools.cache
def tracking_params() -> frozenset[str]:
    """The query parameters that only track a visit, generated from a
    maintained list by scripts/make-webdata (the extension uses the same)."""
    data = json.loads((resources.files("mecene") / "data" / "tracking-params.json").read_text())
    return frozenset(data["params"])


def canonical_url(
    raw: object,
    *,
    schemes: frozenset[str] = frozenset({"http", "https"}),
    keep_fragment: bool = False,
    drop_tracking: bool = False,
) -> str:
    """A web address as a WHATWG URL parser serialises it (the browser's own
    rules: percent-encoding, dot segments, IDN to punycode, no default port),
    without credentials, and without fragment unless `keep_fragment`.

    >>> canonical_url("HTTPS://Example.ORG:443/a/./b/../caf\u00e9?b=1#top")
    'https://example.org/a/caf%C3%A9?b=1'
    >>> canonical_url("https://caf\u00e9.example/")
    'https://xn--caf-dma.example/'
    """
    text = check_text(raw, "a URL")
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"a URL must be at most {MAX_URL_LENGTH} characters")
    if _CONTROL_CHARS.search(text):
        raise ValueError("a URL must not contain control characters or surrounding spaces")
    try:
        url = ada_url.URL(text)
    except ValueError:
        raise ValueError("not a valid URL") from None
    scheme = url.protocol.rstrip(":")
    if scheme not in schemes:
        raise ValueError(f"only {', '.join(sorted(schemes))} URLs are accepted")
    host = url.hostname
    if not (_HOST_RE.match(host) or _is_ip_literal(host.strip("[]"))):
        raise ValueError("the URL has no valid host")
    url.username = ""
    url.password = ""
    if not keep_fragment or url.hash == "":
        url.hash = ""  # also drops an empty fragment ("…/post#")
    if drop_tracking and url.search:
        _drop_tracking(url)
    href = url.href
    if len(href) > MAX_URL_LENGTH:
        raise ValueError(f"a URL must be at most {MAX_URL_LENGTH} characters")
    return href


def _drop_tracking(url: ada_url.URL) -> None:
    """Drop tracking parameters; the query is re-serialised (as the browser's
    URLSearchParams does) only when there was one, as the extension does."""
    params = ada_url.URLSearchParams(url.search[1:])
    tracking = tracking_params()
    names = list(params.keys())
    if not any(name in tracking for name in names):
        return
    for name in set(names) & tracking:
        params.delete(name)
    url.search = str(params)


def thing_url(raw: object) -> str:
    """The canonical URL of a thing (DESIGN.md, "A thing's URL"): WHATWG
    serialised, without tracking parameters. A page is its URL without
    fragment (the extension sends it so); a fragment, when sent, names a part
    of a page with a creator of its own — a comment's anchor — and is kept, so
    that flattring a commenter is not flattring the page twice.

    >>> thing_url("https://Example.org/post?utm_source=feed&p=2#comment-7")
    'https://example.org/post?p=2#comment-7'
    >>> thing_url("https://example.org/post#")
    'https://example.org/post'
    """
    return canonical_url(raw, keep_fragment=True, drop_tracking=True)


def creator_key(raw: object) -> str:
    """Check a creator key and return its canonical form.

    >>> creator_key("fediverse:@Alice@Example.Social")
    'fediverse:@Alice@example.social'
    """
    return _canonical_key(check_text(raw, "a creator key"))


# Checked once per key, not once per allocation naming it: the hub checks
# every settlement's keys, and people flattr the same creators (issue 31).
# A refused key raises, so it is never kept. Bounded: keys are at most
# MAX_KEY_LENGTH characters, so the cache is at most a few tens of MB.
@functools.lru_cache(maxsize=1 << 15)
def _canonical_key(raw: str) -> str:
    if len(raw) > MAX_KEY_LENGTH:
        raise ValueError(f"a creator key must be at most {MAX_KEY_LENGTH} characters")
    scheme, sep, value = raw.partition(":")
    if not sep or scheme not in KEY_SCHEMES:
        raise ValueError(f"unknown creator key kind {scheme!r}: write it as {KEY_SPELLINGS}")
    if not value or _BAD_CHARS.search(value):
        raise ValueError("a creator key's value must be non-empty, without spaces or markup")
    if scheme in URL_SCHEMES:
        schemes = frozenset({"https"}) if scheme == "wm" else frozenset({"http", "https"})
        return f"{scheme}:{canonical_url(value, schemes=schemes)}"
    if scheme == "fediverse":
        m = _FEDI_RE.match(value if value.startswith("@") else "@" + value)
        if not m:
            raise ValueError("a fediverse key is @user@host")
        return f"fediverse:@{m.group(1)}@{m.group(2).lower()}"
    if scheme == "site":
        # A writer's part of a shared publishing host: only the table's shapes.
        host, _, path = value.partition("/")
        key = platform_site_key(host, path)
        # A writer's subdomain is written as its key (alice.medium.com is
        # medium.com/@alice); any path beyond the writer's part is refused.
        if key is None or (path.strip("/") and key.lower() != f"site:{value}".lower()):
            raise ValueError(
                "a site key is a writer's part of a shared host, e.g. medium.com/@name"
            )
        return key
    if scheme == "domain":
        host = _domain_host(value)
        if not _HOST_RE.match(host) or "." not in host:
            raise ValueError("a domain key is a site's registrable domain")
        return f"domain:{host}"
    if scheme == "youtube" and value.startswith("@"):
        # A channel's handle (youtube.com/@handle): YouTube's own rule, 3 to 30
        # letters, digits, "_", "-" and "."; one handle whatever its case.
        if not _YOUTUBE_HANDLE_RE.match(value):
            raise ValueError("a YouTube handle is @ and 3 to 30 letters, digits, _ - or .")
        return f"youtube:{value.lower()}"
    if not _ID_RE.match(value):
        raise ValueError(f"a {scheme} key must be a plain identifier")
    return f"{scheme}:{value}"


# The readable forms every screen shows (extension/keys.js, `readableKey`),
# read back: what a person copies from a popup, a dashboard or `mecene status`.
# From the table of platforms, as the extension's are.
READABLE_PROFILES = {p.readable: scheme for scheme, p in platforms().items()}
KEY_SPELLINGS = (
    "flattr:ID (or Flattr ID ID), "
    + ", ".join(
        f"{p.readable}{'ID' if p.readable.endswith('channel/') else 'NAME'}"
        for p in platforms().values()
    )
    + ", @user@host, medium.com/@NAME (a writer on a shared host), example.org (a site),"
    + " wm:https://… or payment:https://…"
)


def readable_key(key: str) -> str:
    """A key as every screen shows it (extension/keys.js, `readableKey`):
    "liberapay.com/bob", "Flattr ID x", "@alice@example.social", "example.org"."""
    scheme, _, value = key.partition(":")
    if scheme in ("fediverse", "domain", "site"):
        return value
    if scheme == "flattr":
        return f"Flattr ID {value}"
    shown = platform_readable(scheme, value)
    if shown is not None:
        return shown
    if scheme in URL_SCHEMES:
        try:
            url = ada_url.URL(value)
        except ValueError:
            return value
        return (url.host + url.pathname + url.search).removesuffix("/")
    return key


def typed_key(raw: object) -> str:
    """A creator key as a person types it: its canonical form, or any
    readable form the screens show ("liberapay.com/alice", "Flattr ID x",
    "@alice@example.social", "example.org", a profile's https:// address).
    Refused with the spellings that work.

    >>> typed_key("https://www.Liberapay.com/alice/")
    'liberapay:alice'
    """
    text = check_text(raw, "a creator key").strip()
    scheme = text.partition(":")[0]
    if scheme in KEY_SCHEMES and ":" in text:
        return creator_key(text)
    if text.lower().startswith("flattr id "):
        return creator_key(f"flattr:{text[len('flattr id ') :].strip()}")
    if text.startswith("@") and text.count("@") == 2:
        return creator_key(f"fediverse:{text}")
    address = re.sub(r"^https?://", "", text, flags=re.IGNORECASE)
    host, _, path = address.partition("/")
    host = host.lower().removeprefix("www.")
    writer = platform_site_key(host, path.partition("?")[0].partition("#")[0])
    if writer:
        return creator_key(writer)
    # A profile's address, by the same rules as the extension's (routes, sub-pages).
    profile = platform_profile_key(host, path.partition("?")[0].partition("#")[0])
    if profile:
        return creator_key(profile)
    for platform in platforms().values():
        if platform.profile and host in platform.hosts and path.strip("/"):
            raise ValueError(
                f"{text!r} is a page of {platform.name}, not a profile:"
                f" write it as {platform.readable}NAME"
            )
    if host == "youtube.com" and re.fullmatch(r"@[^/]+/?", path):
        return creator_key(f"youtube:{path.strip('/')}")
    for prefix, kind in READABLE_PROFILES.items():
        site, _, rest = prefix.partition("/")
        if platforms()[kind].profile:
            continue  # not a profile by its platform's rules (a route, a shop page)
        if host == site and path.lower().startswith(rest.lower()):
            name = path[len(rest) :].strip("/")
            if name and "/" not in name:
                return creator_key(f"{kind}:{name}")
    if host and not path.strip("/") and "." in host and not _BAD_CHARS.search(host):
        return creator_key(f"domain:{host}")
    if host and path.strip("/"):
        raise ValueError(
            f"{text!r} is an address: write wm:https://{address} for a Web Monetization"
            f" wallet, or payment:https://{address} for a payment page"
        )
    if ":" not in text:
        raise ValueError(f"{text!r} is not a creator key: write it as {KEY_SPELLINGS}")
    raise ValueError(f"unknown creator key kind {scheme!r}: write it as {KEY_SPELLINGS}")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _domain_host(value: str) -> str:
    """A site's name as the browser writes it: lower case, punycode for an
    internationalised name (`café.fr` is `xn--caf-dma.fr`)."""
    if value.isascii():
        return value.lower()
    try:
        return ada_url.URL(f"https://{value}/").hostname
    except ValueError:
        return ""
