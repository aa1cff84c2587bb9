"""detectCreators (extension/content.js) on fixture pages, in real Chromium.

Each case is a page served under a chosen host name and the exact list the
detector must return. content.js is loaded as a plain script (it guards every
extension API), after psl.js, as the extension loads them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mecene.keys import creator_key, thing_url, tracking_params
from tests.support.browser import (
    CHROMIUM_ARGS,
    DETECTOR_FILES,
    EXTENSION,
    PageServer,
    add_detector,
    chromium_path,
    suffix_script,
)
from tests.support.firefox import Firefox, headed_firefox

sync_api = pytest.importorskip("playwright.sync_api")

LONG = "a" * 600


def page(head: str = "", body: str = "") -> str:
    return f"<!doctype html><html><head><title>t</title>{head}</head><body>{body}</body></html>"


P, E = "page", "element"

# (host, path, html, expected [(key, scope)])
CASES: dict[str, tuple[str, str, str, list[tuple[str, str]]]] = {
    "priority_order": (
        "blog.example.org",
        "/post",
        page(
            head='<meta name="fediverse:creator" content="@Alice@Example.Social">'
            '<link rel="monetization" href="https://wallet.example/alice">'
            '<meta name="flattr:id" content="alice">',
            body='<a rel="me" href="https://liberapay.com/alice">support</a>',
        ),
        [
            # The head's own declarations first, by priority; then the body's.
            ("flattr:alice", P),
            ("wm:https://wallet.example/alice", P),
            ("fediverse:@Alice@example.social", P),
            ("liberapay:alice", P),
            ("domain:example.org", P),
        ],
    ),
    "legacy_monetization_and_http_ignored": (
        "news.example.com",
        "/a",
        page(
            head='<meta name="monetization" content="$wallet.example/bob">'
            '<link rel="monetization" href="http://insecure.example/pay">'
        ),
        [("wm:https://wallet.example/bob", P), ("domain:example.com", P)],
    ),
    "flattr_button_in_the_only_article_is_page_scope": (
        "example.net",
        "/story",
        page(
            body='<article><h1>Story</h1><div class="author">'
            '<a class="FlattrButton" rel="flattr;uid:bob;category:text" href="#">Flattr</a>'
            '</div></article><span data-flattr-uid="carol">Carol</span>'
        ),
        [("flattr:bob", P), ("flattr:carol", P), ("domain:example.net", P)],
    ),
    "commenters_are_element_scope": (
        "example.net",
        "/post",
        page(
            head='<meta name="flattr:id" content="author">',
            body='<article>Post<div id="comments">'
            '<div class="comment" id="comment-1"><a rel="me" href="https://ko-fi.com/dan">Dan</a></div>'
            '<div class="comment"><a rel="payment" href="https://pay.example/erin">Erin</a>'
            "</div></div></article>",
        ),
        [
            ("flattr:author", P),
            ("domain:example.net", P),
            ("kofi:dan", E),
            ("payment:https://pay.example/erin", E),
        ],
    ),
    "sibling_articles_are_element_scope": (
        "magazine.example",
        "/",
        page(
            body='<main><article><h2><a href="/fay-story#top">Fay\'s story</a></h2>'
            '<a rel="author" href="https://www.patreon.com/c/fay">Fay</a></article>'
            '<article><h2><a href="https://elsewhere.example/gus">Gus</a></h2>'
            '<a rel="author" href="https://opencollective.com/gus">Gus</a></article></main>'
        ),
        [("domain:magazine.example", P), ("patreon:fay", E), ("opencollective:gus", E)],
    ),
    "payment_links": (
        "shop.example.org",
        "/item",
        page(
            head='<link rel="payment" href="/support">'
            '<link rel="payment" href="https://flattr.com/submit/auto?user_id=abc&url=x">'
            '<link rel="payment" href="https://liberapay.com/hal">'
        ),
        # flattr first by priority; then payment and funding links in document order.
        [
            ("flattr:abc", P),
            ("payment:https://shop.example.org:{port}/support", P),
            ("liberapay:hal", P),
            ("domain:example.org", P),
        ],
    ),
    # Found by the fuzz battery: a host the URL parser keeps percent-encoded.
    "a_host_the_daemon_would_refuse_is_dropped": (
        "example.org",
        "/odd",
        page(
            head='<meta name="monetization" content="$\u00a8wallet.example/bob">'
            '<link rel="payment" href="https://ex ample.org/pay">'
        ),
        [("domain:example.org", P)],
    ),
    "funding_link_in_head_counts_whatever_its_rel": (
        "example.org",
        "/",
        page(head='<link rel="alternate" href="https://www.patreon.com/ivy">'),
        [("patreon:ivy", P), ("domain:example.org", P)],
    ),
    "plain_links_in_text_are_not_creators": (
        "example.org",
        "/about-alice",
        page(
            body='<p>Read about <a href="https://liberapay.com/alice">Alice</a> and '
            '<a href="https://github.com/sponsors/bob">Bob</a>.</p>'
        ),
        [("domain:example.org", P)],
    ),
    "github_repository_names_its_owner": (
        "github.com",
        "/torvalds/linux",
        page(body='<a rel="payment" href="https://github.com/sponsors/jan">Sponsor</a>'),
        # The page's own address names its owner; a link in the README comes after.
        [("github:torvalds", P), ("github:jan", P), ("domain:github.com", P)],
    ),
    "github_reserved_routes_are_not_users": (
        "github.com",
        "/topics/python",
        page(body='<a rel="me" href="https://github.com/orgs/python">orgs</a>'),
        [("domain:github.com", P)],
    ),
    "youtube_channel": (
        "www.youtube.com",
        "/watch",
        page(
            head='<meta itemprop="channelId" content="UCabc123">'
            '<link rel="canonical" href="https://www.youtube.com/channel/UCxyz789">'
        ),
        [("youtube:UCabc123", P), ("youtube:UCxyz789", P), ("domain:youtube.com", P)],
    ),
    "youtube_markers_elsewhere_are_ignored": (
        "example.org",
        "/embed",
        page(head='<meta itemprop="channelId" content="UCabc123">'),
        [("domain:example.org", P)],
    ),
    "bad_metadata_is_dropped": (
        "example.org",
        "/bad",
        page(
            head='<meta name="flattr:id" content="">'
            f'<meta name="flattr:id" content="{LONG}">'
            '<meta name="flattr:id" content="has space">'
            '<meta name="flattr:id" content="&lt;b&gt;x&lt;/b&gt;">'
            '<link rel="payment" href="javascript:alert(1)">'
            '<link rel="payment" href="vbscript:msgbox">'
            '<link rel="payment" href="file:///etc/passwd">'
            '<link rel="monetization" href="data:text/plain,x">'
            '<meta name="fediverse:creator" content="not a handle">'
            '<meta name="monetization" content="">',
            body='<span data-flattr-uid="  "></span>'
            '<a class="FlattrButton" rel="flattr;uid:;" href="#">x</a>'
            '<a rel="payment" href="javascript:void(0)">pay</a>',
        ),
        [("domain:example.org", P)],
    ),
    "psl_github_io_is_a_separate_site": (
        "alice.github.io",
        "/",
        page(),
        [("domain:alice.github.io", P)],
    ),
    "psl_wordpress_com_is_a_separate_site": (
        "bob.wordpress.com",
        "/",
        page(),
        [("domain:bob.wordpress.com", P)],
    ),
    "psl_two_level_suffix": ("www.example.co.uk", "/", page(), [("domain:example.co.uk", P)]),
    "psl_wildcard": ("foo.bar.ck", "/", page(), [("domain:foo.bar.ck", P)]),
    "psl_exception": ("a.www.ck", "/", page(), [("domain:www.ck", P)]),
    "ip_address_page": ("127.0.0.1", "/", page(), [("domain:127.0.0.1", P)]),
}


# Hostile pages: what a visitor can write into a page (a comment, a reply, a
# forum post), written as an attacker would to take the page's place or to
# break its report. The page's own creator stays first; the visitor's links
# are element scope; the report stays within its bounds.
SPAM = "".join(f'<a rel="me" href="https://ko-fi.com/spam{i}">s{i}</a>' for i in range(70))
HOSTILE: dict[str, tuple[str, str, str, list[tuple[str, str]]]] = {
    "seventy_rel_me_links_in_a_comment": (
        "blog.example.org",
        "/spam",
        page(
            head='<meta name="flattr:id" content="alice">',
            body='<article>Post</article><ol class="commentlist">'
            f'<li class="comment">{SPAM}</li></ol>',
        ),
        [("flattr:alice", P), ("domain:example.org", P)]
        + [(f"kofi:spam{i}", E) for i in range(62)],  # 64 entries at most
    ),
    "a_comment_link_with_a_very_long_rel": (
        "blog.example.org",
        "/longrel",
        page(
            head='<meta name="flattr:id" content="alice">',
            body='<div id="comments"><a rel="payment ' + "nofollow " * 400 + 'me" '
            'href="https://liberapay.com/eve">Eve</a></div>',
        ),
        [("flattr:alice", P), ("domain:example.org", P), ("liberapay:eve", E)],
    ),
    # The WordPress Flattr plugin's button markup, pasted into a reply section.
    "a_flattr_button_in_the_replies": (
        "blog.example.org",
        "/replies",
        page(
            head='<link rel="payment" href="https://flattr.com/submit/auto?user_id=alice">',
            body='<article>Post</article><section class="replies"><div>'
            '<a class="FlattrButton" rel="flattr;uid:mallory;category:text;" '
            'href="https://blog.example.org/">Flattr</a></div></section>',
        ),
        [("flattr:alice", P), ("domain:example.org", P), ("flattr:mallory", E)],
    ),
    "a_payment_link_element_inside_a_comment": (
        "blog.example.org",
        "/linkincomment",
        page(
            head='<meta name="fediverse:creator" content="@alice@example.social">',
            body='<article>Post</article><div class="comment" id="comment-9">'
            '<link rel="payment" href="https://evil.example/pay">nice post</div>',
        ),
        [
            ("fediverse:@alice@example.social", P),
            ("domain:example.org", P),
            ("payment:https://evil.example/pay", E),
        ],
    ),
    # Discourse renders each post in div.topic-post; the forum names nobody in its head.
    "data_flattr_uid_in_a_forum_post": (
        "forum.example.net",
        "/t/1",
        page(
            body='<div class="topic-post"><article id="post_2"><div class="cooked">'
            '<span data-flattr-uid="mallory">me</span></div></article></div>'
        ),
        [("domain:example.net", P), ("flattr:mallory", E)],
    ),
    # HTML's own model of a comment: an <article> nested in the post's <article>.
    "a_nested_article_reply_with_rel_author_payment": (
        "example.net",
        "/nested",
        page(
            body='<article><h1>Post</h1><p>by <a rel="author" href="https://liberapay.com/alice">'
            'Alice</a></p><article><p>Reply by <a rel="author payment" '
            'href="https://liberapay.com/mallory">The Guardian</a></p></article></article>'
        ),
        [("liberapay:alice", P), ("domain:example.net", P), ("liberapay:mallory", E)],
    ),
}
HOSTILE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
# Pages whose head names nobody, user content written as an attacker would
# (issue 29): the site stays primary; the attacker is at most element scope.
HOSTILE.update(
    {
        "an_answer_with_ko_fi_s_button": (
            "answers.example.net",
            "/questions/42/how-do-bees-see-ultraviolet",
            (HOSTILE_DIR / "qa-answer-kofi.html").read_text(),
            [("domain:example.net", P), ("kofi:M4LL0RY", E)],
        ),
        "a_forum_s_second_post": (
            "forum.example.net",
            "/t/swarm-season-2026",
            (HOSTILE_DIR / "forum-posts.html").read_text(),
            [
                ("domain:example.net", P),
                ("fediverse:@mallory@mastodon.example", E),
                ("liberapay:mallory", E),
            ],
        ),
        "a_product_review_with_liberapay_s_button": (
            "shop.example.net",
            "/smoker",
            (HOSTILE_DIR / "product-review.html").read_text(),
            [("domain:example.net", P), ("liberapay:eve", E)],
        ),
    }
)
CASES.update(HOSTILE)

# Pages written from what real plugins and platforms emit; each fixture file
# says where its markup comes from. (host, path, file, expected)
REAL_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "real"
GITHUB_ROUTES = [
    "/topics/rust",
    "/copilot",
    "/signup",
    "/marketplace",
    "/orgs/acme/people",
    "/features/actions",
    "/settings/profile",
    "/sessions/sudo_modal",
    "/explore",
]
REAL: dict[str, tuple[str, str, str, list[tuple[str, str]]]] = {
    "github_repository": (
        "github.com",
        "/alice/project",
        "github-repository.html",
        [("github:alice", P), ("domain:github.com", P)],
    ),
    # The repository's FUNDING.yml links, in GitHub's own Sponsor dialog,
    # after its owner (the page's own address); a custom link is no platform;
    # a README's mention of someone's Ko-fi is not a creator.
    "github_repository_funding_links": (
        "github.com",
        "/alice/hivetools",
        "github-repository-funding.html",
        [
            ("github:alice", P),
            ("patreon:alicemakes", P),
            ("kofi:alicemakes", P),
            ("liberapay:alice", P),
            ("domain:github.com", P),
        ],
    ),
    **{
        f"github_route{path.replace('/', '_')}": (
            "github.com",
            path,
            "github-route.html",
            [("domain:github.com", P)],
        )
        for path in GITHUB_ROUTES
    },
    "github_profile": (
        "github.com",
        "/alice",
        "github-profile.html",
        [("github:alice", P), ("fediverse:@alice@mastodon.social", P), ("domain:github.com", P)],
    ),
    "github_sponsors_page": (
        "github.com",
        "/sponsors/alice",
        "github-profile.html",
        [("github:alice", P), ("fediverse:@alice@mastodon.social", P), ("domain:github.com", P)],
    ),
    "gist": (
        "gist.github.com",
        "/alice/0123456789abcdef0123",
        "gist.html",
        [("github:alice", P), ("domain:github.com", P)],
    ),
    "youtube_music_channel": (
        "music.youtube.com",
        "/channel/UC_x5XG1OV2P6uZZ5FSM9Ttw",
        "youtube-music-channel.html",
        [("youtube:UC_x5XG1OV2P6uZZ5FSM9Ttw", P), ("domain:youtube.com", P)],
    ),
    "youtube_watch_page_names_the_channel_by_its_handle": (
        "m.youtube.com",
        "/watch?v=Bz9hK3mQ0aA",
        "youtube-watch.html",
        [("youtube:@beefilms", P), ("domain:youtube.com", P)],
    ),
    # (On m.youtube.com: the server keeps one page per path, and
    # www.youtube.com/watch is another case's.)
    # The app moved on to another video without rewriting the author block:
    # the block is the last video's, so it names nobody for this one.
    "youtube_watch_page_s_stale_author_block_is_not_this_video_s": (
        "m.youtube.com",
        "/watch?v=Zq8Lm2Pp7Yc",
        "youtube-watch.html",
        [("domain:youtube.com", P)],
    ),
    "youtube_channel_page_by_handle": (
        "www.youtube.com",
        "/@BeeFilms/videos",
        "youtube-music-channel.html",
        [("youtube:@beefilms", P), ("domain:youtube.com", P)],
    ),
    "mastodon_post_names_its_author_not_the_server": (
        "mastodon.example",
        "/@adabee/113557412345678901",
        "mastodon-status.html",
        [("fediverse:@adabee@mastodon.example", P), ("domain:mastodon.example", P)],
    ),
    "mastodon_profile_names_its_person": (
        "mastodon.example",
        "/@adabee",
        "mastodon-profile.html",
        [("fediverse:@adabee@mastodon.example", P), ("domain:mastodon.example", P)],
    ),
    # The same head at an address of another user (a page cannot name someone
    # else than the address's own user): only the site.
    "mastodon_head_naming_another_user_than_the_address": (
        "mastodon.example",
        "/@mallory/113557412345678901",
        "mastodon-status.html",
        [("domain:mastodon.example", P)],
    ),
    # The author box's funding links, rel="nofollow" as the theme writes them,
    # count; the article's plain link to someone else's Ko-fi does not.
    "minimal_mistakes_author_box": (
        "kim.example.dev",
        "/notes/hive-acoustics/",
        "minimal-mistakes-author.html",
        [("liberapay:kimlee", P), ("github:kimlee", P), ("domain:example.dev", P)],
    ),
    # A copy the AMP cache serves: the site is the publisher's, not ampproject.org's.
    "amp_cache_copy_credits_the_publisher": (
        "www-newsroom-example-co-uk.cdn.ampproject.org",
        "/c/s/www.newsroom.example.co.uk/2026/11/bees.amp.html",
        "amp-cache-copy.html",
        [("flattr:newsroom", P), ("domain:example.co.uk", P)],
    ),
    # Medium, shared by many writers: the post's author link names the writer.
    "medium_post_names_its_writer": (
        "medium.com",
        "/hive-notes/how-bees-find-their-way-home-3f2a9c1b7d44",
        "medium-post.html",
        [("site:medium.com/@nadiarahman", P), ("domain:medium.com", P)],
    ),
    # A writer's own page on it (their profile, or a post under their name).
    "medium_writer_page": (
        "medium.com",
        "/@NadiaRahman/notes-3f2a9c1b7d45",
        "medium-post.html",
        [("site:medium.com/@nadiarahman", P), ("domain:medium.com", P)],
    ),
    # A writer's profile at NAME.medium.com is medium.com/@NAME (its head says so).
    "medium_writer_subdomain": (
        "nadiarahman.medium.com",
        "/",
        "medium-profile.html",
        [("site:medium.com/@nadiarahman", P), ("domain:medium.com", P)],
    ),
    # A Substack publication is its subdomain; a reader's comment linking
    # another publication (rel="nofollow ugc") mentions it: not a creator.
    "substack_post_pays_its_publication": (
        "hivenotes.substack.com",
        "/p/wintering-the-hives",
        "substack-post.html",
        [("site:hivenotes.substack.com", P), ("domain:substack.com", P)],
    ),
    # A Ghost(Pro) publication likewise; its JSON-LD author's page is on it.
    "ghost_pro_post_pays_its_publication": (
        "hillbees.ghost.io",
        "/wintering-the-hives/",
        "ghost-post.html",
        [("site:hillbees.ghost.io", P), ("domain:ghost.io", P)],
    ),
    # DEV: the JSON-LD's author is the writer; the address (an organization's
    # part) and a tag page's address name nobody.
    "dev_article_pays_its_writer": (
        "dev.to",
        "/hivecollective/wintering-the-hives-4k2p",
        "dev-article.html",
        [("site:dev.to/hanaokafor", P), ("domain:dev.to", P)],
    ),
    # write.as: the blog title's rel="author" link, as WriteFreely writes it.
    "writefreely_post_pays_its_blog": (
        "write.as",
        "/hivenotes/wintering-the-hives",
        "writefreely-post.html",
        [("site:write.as/hivenotes", P), ("domain:write.as", P)],
    ),
    # Yoast SEO's graph: the Article's author is a Person whose sameAs are
    # their own profiles; the publisher Organization's sameAs is not an author.
    "yoast_author_same_as": (
        "hillbees.example.com",
        "/wintering-the-hives/",
        "yoast-author-sameas.html",
        [
            ("liberapay:rosahill", P),
            ("fediverse:@rosa@mastodon.example", P),
            ("domain:example.com", P),
            ("kofi:tomtom", E),
        ],
    ),
    # A package's own "Funding" link (rel="nofollow", as Warehouse writes it);
    # the README's mention of another Ko-fi is not a creator.
    "pypi_project_funding_link": (
        "pypi.org",
        "/project/hivetools/",
        "pypi-project.html",
        [("liberapay:hivetools", P), ("domain:pypi.org", P)],
    ),
    "wordpress_flattr_plugin_long_head_link": (
        "blog.example.org",
        "/2026/04/12/the-spring-flood-and-what-the-neighbours-said-about-our-bees/",
        "wordpress-flattr-plugin.html",
        [("flattr:alice", P), ("domain:example.org", P)],
    ),
    "wordpress_flattr_plugin_rev_button": (
        "bob.example.net",
        "/2011/02/ein-beitrag/",
        "wordpress-flattr-rev.html",
        [("flattr:bob_blog", P), ("domain:example.net", P)],
    ),
    "flattr_link_with_a_bad_id_gives_nothing": (
        "bad.example.org",
        "/post",
        "flattr-bad-id.html",
        [("domain:example.org", P)],
    ),
    "platform_links_that_name_no_profile": (
        "podcast.example.com",
        "/support",
        "platform-non-profile.html",
        [("domain:example.com", P)],
    ),
    "liberapay_widget": (
        "translations.example.org",
        "/support",
        "liberapay-widget.html",
        [("liberapay:carol", P), ("domain:example.org", P)],
    ),
    "image_buttons": (
        "tinytool.example.dev",
        "/",
        "image-buttons.html",
        [
            ("liberapay:dave", P),
            ("kofi:D1D76X1T1", P),
            ("patreon:davetools", P),
            ("opencollective:tinytool", P),
            ("domain:example.dev", P),
        ],
    ),
    "buymeacoffee_button_script_and_widget": (
        "kim.example.blog",
        "/",
        "buymeacoffee.html",
        [
            ("buymeacoffee:kimcooks", P),
            ("buymeacoffee:kimbutton", P),
            ("buymeacoffee:kimwidget", P),
            ("domain:example.blog", P),
        ],
    ),
    "kofi_widget": (
        "erin.example.art",
        "/",
        "kofi-widget.html",
        [("kofi:E1E1OQ2R", P), ("domain:example.art", P)],
    ),
    "opencollective_button_and_github_sponsors_frame": (
        "webframe.example.io",
        "/docs",
        "opencollective-and-sponsors.html",
        [("opencollective:webframe", P), ("github:frank", P), ("domain:example.io", P)],
    ),
    "embeds_in_comments_are_the_commenters": (
        "blog.example.com",
        "/post",
        "embeds-in-comments.html",
        [("flattr:owner", P), ("domain:example.com", P), ("kofi:gina", E), ("liberapay:hank", E)],
    ),
    "rel_me_to_a_fediverse_profile": (
        "ivy.example.net",
        "/",
        "rel-me.html",
        [("fediverse:@ivy@hachyderm.io", P), ("github:ivy", P), ("domain:example.net", P)],
    ),
}
CASES.update(
    {
        name: (host, path, (REAL_DIR / file).read_text(), expected)
        for name, (host, path, file, expected) in REAL.items()
    }
)
# DEV's own routes share its writers' names: a tag page's address names nobody.
CASES["dev_tag_page_pays_the_site"] = (
    "dev.to",
    "/t/beekeeping",
    "<!doctype html><html><head><title>Beekeeping - DEV Community</title></head>"
    '<body><h1>#beekeeping</h1><a class="tag" href="/t/iot">#iot</a></body></html>',
    [("domain:dev.to", P)],
)


# -- a thing's URL (DESIGN.md, "A thing's URL") ---------------------------------------

STORY = "https://news.example.org:{port}/2026/11/story/"


def story(head: str = "") -> str:
    # A news site's article head: its canonical link, as WordPress, Ghost and
    # AMP pages write it (<link rel="canonical" href="…">).
    return page(
        head=f'<link rel="canonical" href="{STORY}">{head}', body="<article>Story</article>"
    )


THING_PAGES = {
    ("news.example.org", "/2026/11/story/"): story(),
    # The same article's AMP page as the AMP cache serves it (its own address
    # names the original; the canonical is on the original's site).
    ("www-news-example-org.cdn.ampproject.org", "/c/s/news.example.org/amp/2026/11/story/"): story(
        '<script async src="https://cdn.ampproject.org/v0.js"></script>'
    ),
    ("www.news.example.org", "/2026/11/story/"): story(),
    ("news.example.org", "/2026/11/story"): story(),
    ("news.example.org", "/amp/2026/11/story/"): story('<script async src="/v0.js"></script>'),
    # Another site's canonical is not this page's (a copy, a scraper): ignored.
    ("copycat.example.com", "/story"): story(),
    ("plain.example.org", "/a"): page(body="<p>No canonical link.</p>"),
}
# (address visited, thing URL): addresses a person calls the same article.
SAME_ARTICLE = [
    ("https://news.example.org:{port}/2026/11/story/", STORY),
    (
        "https://www-news-example-org.cdn.ampproject.org:{port}/c/s/news.example.org/amp/2026/11/story/",
        STORY,
    ),
    (
        "https://www.news.example.org:{port}/2026/11/story/?utm_source=newsletter&utm_medium=email",
        STORY,
    ),
    ("https://news.example.org:{port}/2026/11/story?fbclid=IwAR0xyz", STORY),
    ("https://news.example.org:{port}/amp/2026/11/story/#top", STORY),
    (
        "https://copycat.example.com:{port}/story?gclid=abc",
        "https://copycat.example.com:{port}/story",
    ),
    (
        "https://plain.example.org:{port}/a?utm_campaign=x&id=3&mc_eid=9#comments",
        "https://plain.example.org:{port}/a?id=3",
    ),
    (
        "https://plain.example.org:{port}/a?id=3&ref=home",
        "https://plain.example.org:{port}/a?id=3&ref=home",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    # The server looks pages up by path: a case's query (?v=…) is the page's address only.
    pages = {(host, path.partition("?")[0]): html for host, path, html, _exp in CASES.values()}
    pages.update(THING_PAGES)
    s = PageServer(pages, tmp_path_factory.mktemp("tls")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser(server: PageServer) -> Iterator[Any]:
    """Depends on the server so that it closes first, with its connections."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def detect(browser: Any, server: PageServer, host: str, path: str) -> tuple[list[dict], Any]:
    page_ = browser.new_page()
    page_.goto(server.url(host, path))
    add_detector(page_)
    result = page_.evaluate("detectCreators(document)")
    return result, page_


@pytest.fixture(scope="module")
def firefox(server: PageServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firefox]:
    """Debian's Firefox ESR with a window, over WebDriver BiDi (tests/support/firefox.py)."""
    hosts = [host for host, _path, _html, _exp in CASES.values()]
    hosts += [host for host, _path in THING_PAGES]
    with headed_firefox(tmp_path_factory.mktemp("firefox"), hosts) as ff:
        yield ff


def detect_in_firefox(ff: Firefox, url: str) -> tuple[list[dict], str]:
    ff.driver.call("goto", url=url, wait="load")
    ff.driver.call("addScript", content=suffix_script(url))
    for name in DETECTOR_FILES:
        ff.driver.call("addScript", path=str(EXTENSION / name))
    return ff.driver.call("page", expression="detectCreators(document)"), ff.driver.call(
        "page", expression="thingUrl(document)"
    )


@pytest.mark.parametrize("case", list(CASES))
def test_detect_creators_in_firefox(firefox: Firefox, server: PageServer, case: str) -> None:
    """The same pages, the same answers, in Firefox's DOM and URL parser."""
    host, path, _html, expected = CASES[case]
    result, _thing = detect_in_firefox(firefox, server.url(host, path))
    want = [(key.replace("{port}", str(server.port)), scope) for key, scope in expected]
    assert [(c["key"], c["scope"]) for c in result] == want


@pytest.mark.parametrize(("visited", "thing"), SAME_ARTICLE)
def test_one_url_per_article_in_firefox(
    firefox: Firefox, server: PageServer, visited: str, thing: str
) -> None:
    port = str(server.port)
    _result, got = detect_in_firefox(firefox, visited.replace("{port}", port))
    assert got == thing.replace("{port}", port)


@pytest.mark.parametrize("case", list(CASES))
def test_detect_creators(browser: Any, server: PageServer, case: str) -> None:
    host, path, _html, expected = CASES[case]
    result, page_ = detect(browser, server, host, path)
    page_.close()
    want = [(key.replace("{port}", str(server.port)), scope) for key, scope in expected]
    assert [(c["key"], c["scope"]) for c in result] == want
    for c in result:
        assert creator_key(c["key"]) == c["key"], "the daemon must accept every key as it is"


def test_detection_is_pure_and_repeatable(browser: Any, server: PageServer) -> None:
    host, path, _html, _expected = CASES["commenters_are_element_scope"]
    first, page_ = detect(browser, server, host, path)
    before = page_.evaluate("document.documentElement.outerHTML")
    second = page_.evaluate("detectCreators(document)")
    after = page_.evaluate("document.documentElement.outerHTML")
    page_.close()
    assert first == second
    assert before == after


def test_element_creators_carry_their_part_of_the_page(browser: Any, server: PageServer) -> None:
    """A commenter's part is their comment's anchor; an author's on a front
    page is their article's own link, same origin only; none when there is none."""
    base = f"https://example.net:{server.port}/post"
    result, page_ = detect(browser, server, "example.net", "/post")
    page_.close()
    parts = {c["key"]: c.get("url") for c in result}
    assert parts == {
        "flattr:author": None,
        "domain:example.net": None,
        "kofi:dan": f"{base}#comment-1",
        "payment:https://pay.example/erin": None,
    }
    result, page_ = detect(browser, server, "magazine.example", "/")
    page_.close()
    parts = {c["key"]: c.get("url") for c in result}
    assert parts == {
        "domain:magazine.example": None,
        "patreon:fay": f"https://magazine.example:{server.port}/fay-story",
        "opencollective:gus": None,  # its headline leads to another site
    }


def test_labels_and_sources(browser: Any, server: PageServer) -> None:
    host, path, _html, _expected = CASES["commenters_are_element_scope"]
    result, page_ = detect(browser, server, host, path)
    page_.close()
    dan = next(c for c in result if c["key"] == "kofi:dan")
    assert dan["label"] == "Dan" and dan["source"] == "anchor"
    assert result[0]["source"] == "meta"


SOURCES = {"meta", "link", "anchor", "button", "data", "embed", "page-url", "site"}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_every_entry_stays_within_its_bounds(browser: Any, server: PageServer, case: str) -> None:
    host, path, _html, _expected = CASES[case]
    result, page_ = detect(browser, server, host, path)
    page_.close()
    assert 1 <= len(result) <= 64
    for c in result:
        assert c["source"] in SOURCES
        assert len(c.get("label", "")) <= 80
        assert len(c["key"]) <= 512


@pytest.mark.parametrize(("visited", "thing"), SAME_ARTICLE)
def test_one_url_per_article(browser: Any, server: PageServer, visited: str, thing: str) -> None:
    """The page's same-site canonical URL, else its address; no tracking
    parameters, no fragment; the daemon keeps what the extension sends."""
    port = str(server.port)
    page_ = browser.new_page()
    page_.goto(visited.replace("{port}", port))
    add_detector(page_)
    got = page_.evaluate("thingUrl(document)")
    page_.close()
    assert got == thing.replace("{port}", port)
    assert thing_url(got) == got


def test_the_extension_and_the_daemon_drop_the_same_parameters(browser: Any) -> None:
    """Both read one generated list; the browser's URLSearchParams and the
    daemon's WHATWG parser re-serialise a query the same way."""
    page_ = browser.new_page()
    add_detector(page_)
    params = page_.evaluate("MECENE_TRACKING_PARAMS")
    query = "&".join(f"{p}=1" for p in params)
    raw = f"https://x.example/p?keep=a%20b~&{query}&also=%E2%9C%93"
    got = page_.evaluate(
        "(raw) => { const u = new URL(raw); for (const p of MECENE_TRACKING_PARAMS) "
        "u.searchParams.delete(p); return u.href; }",
        raw,
    )
    page_.close()
    assert sorted(params) == sorted(tracking_params())
    assert thing_url(raw) == got == "https://x.example/p?keep=a+b%7E&also=%E2%9C%93"
