from __future__ import annotations

import pytest

from daemon.keys import canonical_url, creator_key, thing_url


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
        "https://example.org/<script>",
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


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("flattr:abc", "flattr:abc"),
        ("wm:https://wallet.example/alice", "wm:https://wallet.example/alice"),
        ("fediverse:@Alice@Example.Social", "fediverse:@Alice@example.social"),
        ("fediverse:alice@example.social", "fediverse:@alice@example.social"),
        ("domain:Alice.GitHub.io", "domain:alice.github.io"),
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
