from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mecene import keys
from mecene.keys import canonical_url, creator_key, thing_url


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTPS://Example.ORG:443/a?b=1#top", "https://example.org/a?b=1"),
        ("http://example.org", "http://example.org/"),
        ("http://example.org:8080/x", "http://example.org:8080/x"),
        ("https://user:pw@example.org/x", "https://example.org/x"),
        ("http://[::1]:8000/", "http://[::1]:8000/"),
    ],
)
def test_canonical_urls(raw: str, canonical: str) -> None:
    assert canonical_url(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "thing"),
    [
        ("HTTPS://Example.ORG:443/post", "https://example.org/post"),
        ("https://example.org/post#", "https://example.org/post"),
        ("https://example.org/post#comment-7", "https://example.org/post#comment-7"),
        (
            "https://u:p@example.org/p#creator=kofi%3Adan",
            "https://example.org/p#creator=kofi%3Adan",
        ),
    ],
)
def test_things_keep_a_fragment_naming_a_part_of_the_page(raw: str, thing: str) -> None:
    assert thing_url(raw) == thing
    assert canonical_url(raw) == thing.partition("#")[0], "creator keys' URLs never keep one"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "ftp://x.org/",
        "https://",
        "https://exa mple.org/",
        " https://example.org/",
        "https://example.org/\tpath",
        "https://example.org/\ud800",
        "https://\udfff.example/",
        "https://x.org:99999/",
        "https://" + "a" * 3000 + ".org/",
        None,
        42,
        "vbscript:x",
    ],
)
def test_bad_urls(raw: object) -> None:
    with pytest.raises(ValueError):
        canonical_url(raw)


# Addresses a person calls the same article: one thing each (DESIGN.md, "A
# thing's URL"). The daemon serialises as the browser does, so a raw API client
# and the extension agree.
SAME_THING = [
    ("https://example.org/a/./b/../post", "https://example.org/a/post"),
    ("https://example.org/café", "https://example.org/caf%C3%A9"),
    ("https://café.example/post", "https://xn--caf-dma.example/post"),
    ("https://EXAMPLE.org:443/post", "https://example.org/post"),
    ("https://example.org/post?utm_source=feed&utm_medium=rss", "https://example.org/post"),
    ("https://example.org/post?fbclid=IwAR0abc", "https://example.org/post"),
    ("https://example.org/post?gclid=x&p=2", "https://example.org/post?p=2"),
    ("https://example.org/post?p=2&mc_cid=1&mc_eid=2", "https://example.org/post?p=2"),
    ("https://example.org/post#section-3", "https://example.org/post#section-3"),
    ("https://example.org/a b", "https://example.org/a%20b"),
    ("https://example.org/<script>", "https://example.org/%3Cscript%3E"),
]
DIFFERENT_THINGS = [
    ("https://example.org/post?p=2", "https://example.org/post?p=3"),
    ("https://example.org/post", "https://example.org/post/"),  # only the site's canonical says so
    ("https://example.org/post", "https://www.example.org/post"),
    ("http://example.org/post", "https://example.org/post"),
    ("https://example.org/post?ref=newsletter", "https://example.org/post"),  # not in the list
    ("https://example.org/Post", "https://example.org/post"),
]


@pytest.mark.parametrize(("a", "b"), SAME_THING)
def test_addresses_of_the_same_article_are_one_thing(a: str, b: str) -> None:
    assert thing_url(a) == thing_url(b) == thing_url(thing_url(a))


@pytest.mark.parametrize(("a", "b"), DIFFERENT_THINGS)
def test_different_things_stay_different(a: str, b: str) -> None:
    assert thing_url(a) != thing_url(b)


def test_the_query_is_rewritten_only_when_a_tracking_parameter_goes() -> None:
    # As the browser's URLSearchParams: untouched unless something is deleted.
    assert thing_url("https://example.org/s?q=a%20b&x=~") == "https://example.org/s?q=a%20b&x=~"
    assert thing_url("https://example.org/s?q=a%20b&utm_id=1") == "https://example.org/s?q=a+b"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("flattr:abc", "flattr:abc"),
        ("wm:https://wallet.example/alice", "wm:https://wallet.example/alice"),
        ("fediverse:@Alice@Example.Social", "fediverse:@Alice@example.social"),
        ("fediverse:alice@example.social", "fediverse:@alice@example.social"),
        ("domain:Alice.GitHub.io", "domain:alice.github.io"),
        ("domain:café.fr", "domain:xn--caf-dma.fr"),
        ("payment:http://pay.example/x", "payment:http://pay.example/x"),
        ("github:torvalds", "github:torvalds"),
        ("youtube:UC_x5XG1OV2P6uZZ5FSM9Ttw", "youtube:UC_x5XG1OV2P6uZZ5FSM9Ttw"),
    ],
)
def test_creator_keys(raw: str, key: str) -> None:
    assert creator_key(raw) == key


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "flattr:",
        "nope:abc",
        "flattr:a b",
        "flattr:<b>",
        "wm:http://wallet.example/a",
        "payment:javascript:alert(1)",
        "domain:localhost",
        "fediverse:@alice",
        "flattr:" + "a" * 600,
        "github:a/b",
        None,
        ["flattr:a"],
    ],
)
def test_bad_creator_keys(raw: object) -> None:
    with pytest.raises(ValueError):
        creator_key(raw)


ROUND_TRIP = [
    "flattr:x9Ab",
    "fediverse:@alice@example.social",
    "domain:example.org",
    "github:octo-cat",
    "liberapay:alice",
    "opencollective:webpack",
    "kofi:bob_art",
    "patreon:carol",
    "buymeacoffee:kimcooks",
    "youtube:UCabc123_-",
    "youtube:@beefilms",
    "site:medium.com/@nadia",
    "site:hivenotes.substack.com",
]


def test_every_readable_form_the_screens_show_is_read_back() -> None:
    """Issue 28: `liberapay.com/alice`, shown by the popup and the dashboard,
    was refused by `mecene give` ("unknown creator key kind"). The readable
    form of each key, as extension/keys.js writes it for every screen, is
    read back to the key; so are a profile's https:// address and its
    canonical form."""
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/test"
    extension = Path(__file__).resolve().parents[2] / "extension"
    script = (
        f"require({json.dumps(str(extension / 'platforms.js'))});"
        f"require({json.dumps(str(extension / 'keys.js'))});"
        f"console.log(JSON.stringify({json.dumps(ROUND_TRIP)}"
        ".map((k) => globalThis.MeceneKeys.readableKey(k))));"
    )
    shown = json.loads(
        subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout
    )
    assert shown[:3] == ["Flattr ID x9Ab", "@alice@example.social", "example.org"]
    for key, readable in zip(ROUND_TRIP, shown, strict=True):
        assert keys.typed_key(readable) == key, readable
        assert keys.typed_key(key) == key
        assert keys.readable_key(key) == readable  # the tray's and the CLI's: the same words
    assert keys.typed_key("https://www.Liberapay.com/alice/") == "liberapay:alice"
    assert keys.typed_key("  ko-fi.com/bob_art ") == "kofi:bob_art"


def test_a_writers_subdomain_is_their_part_of_the_shared_host() -> None:
    """Issue 29: nadia.medium.com is medium.com/@nadia (Medium's own head
    says so: tests/fixtures/real/medium-profile.html); a publication's
    subdomain is its own part; a path beyond the part, another's subdomain
    or the host's own pages are not a writer's."""
    assert creator_key("site:Nadia.medium.com") == "site:medium.com/@nadia"
    assert keys.typed_key("https://nadia.medium.com/wintering-3f2a9c1b7d45") == (
        "site:medium.com/@nadia"
    )
    assert keys.typed_key("hivenotes.substack.com/p/wintering") == "site:hivenotes.substack.com"
    for bad in (
        "site:hivenotes.substack.com/p/wintering",
        "site:help.medium.com",
        "site:substack.com",
        "site:a.b.ghost.io",
    ):
        with pytest.raises(ValueError):
            creator_key(bad)


@pytest.mark.parametrize(
    ("typed", "hint"),
    [
        ("Alice", "'Alice' is not a creator key: write it as flattr:ID"),
        ("bogus:x", "unknown creator key kind 'bogus': write it as flattr:ID"),
        ("wallet.example/alice", "write wm:https://wallet.example/alice for a Web Monetization"),
        ("liberapay.com/a/b", "is a page of Liberapay, not a profile: write it as liberapay.com/"),
    ],
)
def test_a_key_typed_wrong_gets_the_right_spelling(typed: str, hint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(hint)):
        keys.typed_key(typed)
