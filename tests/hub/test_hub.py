"""The hub on both engines: SQLite (the embedded default) and the real PostgreSQL.

Every test ends by checking the books: postings sum to zero, every entry is
balanced, every balance is the sum of its postings, and nothing that may not
go negative has.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.db import migrate, open_database
from hub.http import button_svg, create_app
from hub.proofs import ProofFetcher
from hub.provider import SimulatedProvider
from hub.service import Hub
from mecene import money, signing
from mecene.time import FrozenClock
from tests.support.hubs import JOINED, HubClient, Person, ProofSite, fresh_pg_database

NOV = "2026-11"
OCT = "2026-10"


async def test_info_names_the_hub_and_its_rules(connect: Any, hub: Hub) -> None:
    info = await connect().call("GET", "/v1", expect=200, sign=False)
    assert info["public_key"] == hub.public_key
    assert info["creator_fee_percent"] == 10
    assert info["deposit_methods"]["card"] == {
        "label": "card",
        "fixed_cents": 30,
        "parts": 2,
        "per": 100,
    }


# -- signed requests ------------------------------------------------------------------


async def test_account_routes_need_a_valid_fresh_signature(
    connect: Any, clock: FrozenClock
) -> None:
    alice = connect()
    assert (await alice.call("GET", "/v1/account", expect=401, sign=False))["error"] == "unsigned"
    me = await alice.call("GET", "/v1/account", expect=200)
    assert me == {
        "account": alice.person.account,
        "balance_cents": 0,
        "creator_balance_cents": 0,
        "withdrawable_cents": 0,
        "min_withdrawal_cents": 1000,
        "received": {"gross_cents": 0, "fee_cents": 0, "net_cents": 0},
        "withheld_cents": 0,
        "withheld": [],
        "min_giving_cents": 200,
        "escrow": [],
        "keys": [],
        "nonprofit": False,
    }
    # A replay of the very same request is refused.
    headers = alice.headers("GET", "/v1/account", b"")
    await alice.call("GET", "/v1/account", expect=200, headers=headers, sign=False)
    again = await alice.call("GET", "/v1/account", expect=401, headers=headers, sign=False)
    assert again["error"] == "replayed"
    # Signed for another route, or another body, or by another key: refused.
    moved = alice.headers("GET", "/v1/settlements/2026-10", b"")
    out = await alice.call("GET", "/v1/account", expect=401, headers=moved, sign=False)
    assert out["error"] == "bad_signature"
    body = {"method": "bank", "amount_cents": 500, "id": "x" * 10, "fee_cents": 32}
    signed_other = alice.headers(
        "POST", "/v1/deposits", json.dumps({**body, "amount_cents": 9}).encode()
    )
    out = await alice.call(
        "POST", "/v1/deposits", body, expect=401, headers=signed_other, sign=False
    )
    assert out["error"] == "bad_signature"
    forged = {**alice.headers("GET", "/v1/account", b""), "Mecene-Account": Person.new().account}
    out = await alice.call("GET", "/v1/account", expect=401, headers=forged, sign=False)
    assert out["error"] == "bad_signature"
    # Signed too long ago (or ahead): refused, so old nonces can be forgotten.
    old = alice.headers("GET", "/v1/account", b"")
    clock.advance(seconds=signing.MAX_SKEW_SECONDS + 1)
    out = await alice.call("GET", "/v1/account", expect=401, headers=old, sign=False)
    assert out["error"] == "stale"


# -- deposits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "amount", "fee"),
    [("bank", 2000, 36), ("card", 2000, 70), ("paypal", 2000, 103), ("card", 1025, 51)],
)
async def test_deposit_fees_are_shown_before_paying(
    connect: Any, method: str, amount: int, fee: int
) -> None:
    alice = connect()
    quote = await alice.call(
        "POST", "/v1/deposits/quote", {"method": method, "amount_cents": amount}, 200, sign=False
    )
    assert quote == {
        "method": method,
        "amount_cents": amount,
        "fee_cents": fee,
        "total_cents": amount + fee,
    }
    out = await alice.deposit(amount, method)
    assert out["balance_cents"] == amount
    assert out["deposit"]["fee_cents"] == fee


async def test_a_deposit_method_of_another_type_is_refused(connect: Any) -> None:
    alice = connect()
    for method in ([], {"card": 1}, None):
        body = {"method": method, "amount_cents": 2000}
        out = await alice.call("POST", "/v1/deposits/quote", body, 400, sign=False)
        assert out["error"] == "invalid" and "method is one of" in out["message"]


async def test_a_deposit_is_idempotent_and_checked(connect: Any, hub: Hub) -> None:
    alice = connect()
    body = {"id": str(uuid.uuid4()), "method": "card", "amount_cents": 2000, "fee_cents": 70}
    first = await alice.call("POST", "/v1/deposits", body, 201)
    again = await alice.call("POST", "/v1/deposits", body, 200)
    assert again["deposit"] == first["deposit"] and again["balance_cents"] == 2000
    other = await alice.call(
        "POST", "/v1/deposits", {**body, "amount_cents": 3000, "fee_cents": 90}, 409
    )
    assert other["error"] == "id_conflict"
    # The fee the person saw must be the fee: else it is shown again.
    stale = await alice.call(
        "POST", "/v1/deposits", {**body, "id": str(uuid.uuid4()), "fee_cents": 60}, 400
    )
    assert stale["quote"]["fee_cents"] == 70
    for bad in (
        {"amount_cents": 199},
        {"amount_cents": 20.5},
        {"amount_cents": "2000"},
        {"method": "cash"},
    ):
        out = await alice.call(
            "POST", "/v1/deposits", {**body, "id": str(uuid.uuid4()), **bad}, 400
        )
        assert out["error"] == "invalid"
    declined = await alice.call(
        "POST",
        "/v1/deposits",
        {"id": str(uuid.uuid4()), "method": "card", "amount_cents": 2013, "fee_cents": 70},
        402,
    )
    assert declined["error"] == "declined"
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 2000
    assert await hub.balance_of("provider-fees:card") == 70


# -- settlements ---------------------------------------------------------------------------


async def test_a_settlement_spends_the_balance_and_returns_a_signed_receipt(
    connect: Any, hub: Hub
) -> None:
    alice = connect()
    await alice.deposit(1000)
    allocations = [
        {"creator": "domain:example.org", "url": "https://example.org/a", "cents": 300},
        {"creator": "domain:example.org", "url": "https://example.org/b", "cents": 200},
    ]
    out = await alice.settle(OCT, allocations)
    receipt = json.loads(out["receipt"])
    signing.verify(hub.public_key, out["receipt"].encode(), out["signature"])
    assert receipt["account"] == alice.person.account
    # The receipt says what was accepted (version 2); the payout run routed it.
    assert (receipt["v"], receipt["spend_cents"]) == (2, 500) and "held_cents" not in receipt
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 500
    # The same document again: the same receipt, nothing spent twice.
    assert await alice.settle(OCT, allocations, expect=200) == out
    escrowed = {
        "pending_cents": 0, "credited_cents": 0, "withheld_cents": 0, "escrow_cents": 500,
        "returned_cents": 0,
    }  # fmt: skip
    assert await alice.call("GET", f"/v1/settlements/{OCT}", expect=200) == {
        **out,
        "outcome": escrowed,  # what became of the money: nobody has proved example.org
    }
    # A different document for the same month: refused.
    other = await alice.settle(OCT, allocations[:1], expect=409)
    assert other["error"] == "settlement_conflict"
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 500
    assert await hub.balance_of("escrow:domain:example.org") == 500


async def test_bad_settlements_are_refused_and_spend_nothing(connect: Any, hub: Hub) -> None:
    alice, mallory = connect(), connect()
    await alice.deposit(1000)
    good = [{"creator": "flattr:bob", "cents": 600}]
    short = await alice.settle(OCT, [{"creator": "flattr:bob", "cents": 1500}], expect=402)
    assert short["error"] == "insufficient_funds" and short["balance_cents"] == 1000
    doc = alice.person.settlement(OCT, good)
    # Signed by someone else, or sent by someone else.
    forged = {**doc, "signature": mallory.person.sign(doc["document"].encode())}
    assert (await alice.call("POST", "/v1/settlements", forged, 401))["error"] == "bad_signature"
    assert (await mallory.call("POST", "/v1/settlements", doc, 403))["error"] == "forbidden"
    cases: list[dict[str, Any]] = [
        {**json.loads(doc["document"]), "spend_cents": 700},  # does not add up
        {**json.loads(doc["document"]), "allocations": [{"creator": "nope:x", "cents": 600}]},
        {
            **json.loads(doc["document"]),
            "allocations": [{"creator": "flattr:bob", "cents": -1, "url": "https://x.org/"}],
        },
        {
            **json.loads(doc["document"]),
            "private": True,
            "allocations": [{"creator": "flattr:bob", "cents": 600, "url": "https://x.org/"}],
        },
    ]
    for case in cases:
        text = json.dumps(case, sort_keys=True, separators=(",", ":")).encode()
        body = {"document": text.decode(), "signature": alice.person.sign(text)}
        out = await alice.call("POST", "/v1/settlements", body, 400)
        assert out["error"] == "invalid", case
    spaced = json.dumps(json.loads(doc["document"]), sort_keys=True)
    body = {"document": spaced, "signature": alice.person.sign(spaced.encode())}
    assert "canonical" in (await alice.call("POST", "/v1/settlements", body, 400))["message"]
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 1000
    await alice.call("POST", "/v1/settlements", doc, 201)


async def test_to_receive_you_must_give(connect: Any, hub: Hub) -> None:
    """A creator's money for a month waits until it gives at least 2 € that month."""
    alice, bob = connect(), connect()
    issued = await bob.call("POST", "/v1/flattr-ids", {}, 201)
    assert await bob.call("POST", "/v1/flattr-ids", {}, 200) == {**issued, "new": False}
    key = issued["key"]
    assert issued["meta"] == f'<meta name="flattr:id" content="{key[7:]}">'
    await alice.deposit(2000)
    await bob.deposit(2000)
    await alice.settle(OCT, [{"creator": key, "url": "https://bob.example/", "cents": 1000}])
    me = await bob.call("GET", "/v1/account", expect=200)
    assert (me["creator_balance_cents"], me["withheld_cents"], me["keys"]) == (0, 1000, [key])
    # Bob gives 1.50 € in October: not enough.
    await bob.settle(OCT, [{"creator": "domain:example.org", "cents": 150}])
    assert (await bob.call("GET", "/v1/account", expect=200))["withheld_cents"] == 1000
    # November: bob gives 2 € first, then alice's flattr is credited at once.
    await bob.settle(NOV, [{"creator": "domain:example.org", "cents": 200}])
    await alice.settle(NOV, [{"creator": key, "cents": 500}])
    me = await bob.call("GET", "/v1/account", expect=200)
    assert (me["creator_balance_cents"], me["withheld_cents"]) == (450, 1000)  # 10 % fee
    assert await hub.fees_cents() == 50
    # What a creator is shown: gross, fee and net, why the rest waits, and
    # that 4.50 € is not withdrawable yet (the smallest withdrawal is 10 €).
    assert me["received"] == {"gross_cents": 500, "fee_cents": 50, "net_cents": 450}
    assert me["withheld"] == [{"month": OCT, "cents": 1000}]
    assert (me["withdrawable_cents"], me["min_withdrawal_cents"]) == (0, 1000)
    # A key bob claims, not proved yet: what waits for him under it.
    carol = connect()
    await carol.deposit(1000)
    await carol.settle(OCT, [{"creator": "domain:bob.example", "cents": 300}])
    claim = await bob.call("POST", "/v1/claims", {"key": "domain:bob.example"}, 201)
    assert claim["where"].startswith("a line of https://SITE/.well-known/mecene-claim.txt")
    me = await bob.call("GET", "/v1/account", expect=200)
    # As given, and what bob receives once he proves it (the fee taken then).
    assert me["escrow"] == [
        {"key": "domain:bob.example", "cents": 300, "fee_cents": 30, "net_cents": 270}
    ]
    report = await hub.payouts(NOV)
    assert report["creators"] == [
        {
            "account": bob.person.account,
            "allocations": 1,
            "gross_cents": 500,
            "fee_cents": 50,
            "net_cents": 450,
        }
    ]


async def test_withheld_money_is_released_when_the_creator_gives(connect: Any, hub: Hub) -> None:
    alice, carol, bob = connect(), connect(), connect()
    key = (await bob.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    for p in (alice, carol, bob):
        await p.deposit(2000)
    await alice.settle(OCT, [{"creator": key, "cents": 333}])
    await carol.settle(OCT, [{"creator": key, "cents": 334}, {"creator": "flattr:x", "cents": 1}])
    assert (await bob.call("GET", "/v1/account", expect=200))["withheld_cents"] == 667
    await bob.settle(OCT, [{"creator": "domain:example.org", "cents": 200}])
    me = await bob.call("GET", "/v1/account", expect=200)
    # A fee per giver: 33 on 333 (33.3), 33 on 334 (33.4).
    assert (me["creator_balance_cents"], me["withheld_cents"]) == (667 - 66, 0)


async def test_non_profits_pay_no_fee(connect: Any, hub: Hub) -> None:
    alice, org = connect(), connect()
    key = (await org.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    await hub.set_nonprofit(org.person.account, True)
    await alice.deposit(1000)
    await org.deposit(1000)
    await org.settle(OCT, [{"creator": "domain:example.org", "cents": 200}])
    await alice.settle(OCT, [{"creator": key, "cents": 999}])
    assert (await org.call("GET", "/v1/account", expect=200))["creator_balance_cents"] == 999
    assert await hub.fees_cents() == 0


# -- creators, proofs, escrow ---------------------------------------------------------------


async def test_escrow_is_released_to_whoever_proves_the_key(
    connect: Any, hub: Hub, proof_site: ProofSite
) -> None:
    alice, dana, eve = connect(), connect(), connect()
    await alice.deposit(2000)
    await dana.deposit(2000)
    await dana.settle(NOV, [{"creator": "domain:example.org", "cents": 200}])
    await alice.settle(OCT, [{"creator": "domain:dana.example", "cents": 700}])
    assert await hub.balance_of("escrow:domain:dana.example") == 700
    claim = await dana.call("POST", "/v1/claims", {"key": "domain:dana.example"}, 201)
    assert claim["state"] == "pending" and claim["token"].startswith("mecene-claim-")
    # Hex: a claim id is typed on a command line, where a leading "-" reads as an option.
    assert len(claim["id"]) == 24 and all(c in "0123456789abcdef" for c in claim["id"])
    # Not proved yet: refused, nothing moves.
    nope = await dana.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 422)
    assert nope["error"] == "not_proven"
    # What waits for her is said as she will receive it: 7.00 € less the fee.
    waiting = (await dana.call("GET", "/v1/account", expect=200))["escrow"]
    assert waiting == [
        {"key": "domain:dana.example", "cents": 700, "fee_cents": 70, "net_cents": 630}
    ]
    await hub.set_nonprofit(dana.person.account, True)  # no fee: all of it
    assert (await dana.call("GET", "/v1/account", expect=200))["escrow"][0]["net_cents"] == 700
    await hub.set_nonprofit(dana.person.account, False)
    # Eve claims it too, and puts her token on a page she does not control: refused.
    eves = await eve.call("POST", "/v1/claims", {"key": "domain:dana.example"}, 201)
    proof_site.put("dana.example", "/.well-known/mecene-claim.txt", f"# mine\n{claim['token']}\n")
    await eve.call("POST", f"/v1/claims/{eves['id']}/verify", {}, 422)
    done = await dana.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["claim"]["state"] == "verified" and done["released_cents"] == 700
    assert done["claim"]["proof"] == "https://dana.example/.well-known/mecene-claim.txt"
    # Released in December: dana has not given for December yet, so it is withheld.
    me = await dana.call("GET", "/v1/account", expect=200)
    assert (me["keys"], me["withheld_cents"]) == (["domain:dana.example"], 700)
    assert await hub.balance_of("escrow:domain:dana.example") == 0
    # Eve can no longer claim it; new money goes to dana directly.
    taken = await eve.call("POST", "/v1/claims", {"key": "domain:dana.example"}, 409)
    assert taken["error"] == "key_taken"
    await alice.settle(NOV, [{"creator": "domain:dana.example", "cents": 100}])
    assert (await dana.call("GET", "/v1/account", expect=200))["creator_balance_cents"] == 90


@pytest.mark.parametrize(
    ("key", "host", "path", "page"),
    [
        ("domain:meta.example", "meta.example", "/", '<meta name="mecene:claim" content="{t}">'),
        ("payment:https://pay.example/me", "pay.example", "/.well-known/mecene-claim.txt", "{t}"),
    ],
)
async def test_each_key_kind_is_proved_where_only_its_owner_writes(
    connect: Any, proof_site: ProofSite, key: str, host: str, path: str, page: str
) -> None:
    owner = connect()
    claim = await owner.call("POST", "/v1/claims", {"key": key}, 201)
    proof_site.put(host, path, page.format(t=claim["token"]), "text/html")
    done = await owner.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["claim"]["state"] == "verified"
    assert (await owner.call("GET", "/v1/account", expect=200))["keys"] == [key]


PROFILES = Path(__file__).resolve().parents[1] / "fixtures" / "profiles"
# key, then what the hub fetches (host, path, fixture), then what else a
# visitor may write on (the human profile page, when the proof reads an API).
PROFILE_PROOFS = [
    ("github:octo", [("api.github.com", "/users/octo", "github-user.json")],
     [("github.com", "/octo", "github-profile.html")]),
    ("liberapay:lia", [("liberapay.com", "/lia/", "liberapay-profile.html")], []),
    ("kofi:kim", [("ko-fi.com", "/kim", "kofi-profile.html")], []),
    ("patreon:patrowe", [("www.patreon.com", "/patrowe", "patreon-profile.html")], []),
    ("opencollective:webpack",
     [("opencollective.com", "/webpack", "opencollective-profile.html")], []),
    ("youtube:UCabcdefghijklmnopqrstuv",
     [("www.youtube.com", "/channel/UCabcdefghijklmnopqrstuv/about", "youtube-about.html")], []),
    # A channel by its handle (what a watch page names, issue 29): its About page.
    ("youtube:@beefilms",
     [("www.youtube.com", "/@beefilms/about", "youtube-about.html")], []),
    # A Medium writer (issue 29): the bio in their profile page's head.
    ("site:medium.com/@nadiarahman",
     [("medium.com", "/@nadiarahman", "medium-profile.html")], []),
]  # fmt: skip


async def test_the_hub_settles_only_months_that_have_ended_everywhere(
    connect: Any, clock: FrozenClock
) -> None:
    """Issue 13, point 4: a month is settled once it has ended in every time
    zone (its next month's first day, 12:00 UTC, when UTC−12 leaves it), and
    never one that had ended before the account existed."""
    alice = connect()
    await alice.deposit(2000)
    row = [{"creator": "domain:example.org", "cents": 300}]
    clock.set(dt.datetime(2026, 12, 1, 11, 59, 59, tzinfo=dt.UTC))  # Kiritimati: Dec 2
    early = await alice.settle(NOV, row, expect=409)
    assert early["error"] == "month_not_ended"
    assert (early["settle_from"], early["retry_after"]) == ("2026-12-01T12:00:00.000000Z", 2)
    december = await alice.settle("2026-12", row, expect=409)  # still December everywhere
    assert december["error"] == "month_not_ended" and december["retry_after"] > 30 * 86400
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 2000
    clock.set(dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC))
    await alice.settle(NOV, row, expect=201)
    # Before the account: 1999, and for a new account, any month gone by.
    old = await alice.settle("1999-01", row, expect=409)
    assert old["error"] == "month_before_account"
    newcomer = connect(joined=None)
    await newcomer.call("GET", "/v1/account", expect=200)  # the account is opened now
    late = await newcomer.settle(NOV, [{"creator": "domain:example.org", "cents": 0}], expect=409)
    assert late["error"] == "month_before_account"


async def test_a_settlement_never_pays_the_settlers_own_keys(
    connect: Any, hub: Hub, proof_site: ProofSite
) -> None:
    """Issue 13, point 4: paying one's own flattr id (or a key one proved)
    would come back as creator money, 90 %, and count as giving."""
    alice = connect()
    await alice.deposit(2000)
    mine = (await alice.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    claim = await alice.call("POST", "/v1/claims", {"key": "domain:alice.example"}, 201)
    proof_site.put("alice.example", "/.well-known/mecene-claim.txt", claim["token"])
    await alice.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    for key in (mine, "domain:alice.example"):
        rows = [{"creator": key, "cents": 300}, {"creator": "domain:other.example", "cents": 200}]
        refused = await alice.settle(OCT, rows, expect=409)
        assert (refused["error"], refused["keys"]) == ("own_key", [key])
    me = await alice.call("GET", "/v1/account", expect=200)
    assert (me["balance_cents"], me["creator_balance_cents"], me["withheld_cents"]) == (2000, 0, 0)
    assert await hub.count("creator", mine) == 0
    # Without them, the month goes through.
    await alice.settle(OCT, [{"creator": "domain:other.example", "cents": 500}], expect=201)


@pytest.mark.parametrize(("key", "proof_pages", "other_pages"), PROFILE_PROOFS)
async def test_a_profile_proves_a_key_only_in_what_its_owner_writes(
    connect: Any,
    proof_site: ProofSite,
    key: str,
    proof_pages: list[tuple[str, str, str]],
    other_pages: list[tuple[str, str, str]],
) -> None:
    """The token where supporters, patrons and commenters write (and in a
    `<meta>` an attacker slipped into the body) proves nothing; in the
    owner's bio or description it does."""
    mallory, owner = connect(), connect()
    stolen = await mallory.call("POST", "/v1/claims", {"key": key}, 201)
    for host, path, name in proof_pages + other_pages:
        text = (PROFILES / name).read_text()
        assert "VISITOR-TEXT" in text or name.endswith(".json")
        proof_site.put(host, path, text.replace("VISITOR-TEXT", stolen["token"]), "text/html")
    refused = await mallory.call("POST", f"/v1/claims/{stolen['id']}/verify", {}, 422)
    assert refused["error"] == "not_proven"
    claim = await owner.call("POST", "/v1/claims", {"key": key}, 201)
    for host, path, name in proof_pages:
        text = (PROFILES / name).read_text().replace("OWNER-TEXT", claim["token"])
        proof_site.put(
            host, path, text, "application/json" if name.endswith(".json") else "text/html"
        )
    done = await owner.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["claim"]["state"] == "verified"
    assert (await owner.call("GET", "/v1/account", expect=200))["keys"] == [key]


async def test_a_ghost_pro_publication_is_proved_in_its_own_head(
    connect: Any, proof_site: ProofSite
) -> None:
    """Issue 29: site:NAME.ghost.io is proved like a domain, by the claim
    meta its administrator puts in the site header (Ghost's code
    injection); the same meta in a post's body, where staff writers and
    HTML cards write, proves nothing."""
    key = "site:hillbees.ghost.io"
    page = (
        Path(__file__).resolve().parents[1] / "fixtures" / "real" / "ghost-post.html"
    ).read_text()
    mallory, owner = connect(), connect()
    stolen = await mallory.call("POST", "/v1/claims", {"key": key}, 201)
    assert "Code injection" in stolen["where"]
    section = '<section class="gh-content gh-canvas">'
    meta = f'<meta name="mecene:claim" content="{stolen["token"]}">'
    in_body = page.replace(section, section + meta)
    proof_site.put("hillbees.ghost.io", "/", in_body, "text/html")
    refused = await mallory.call("POST", f"/v1/claims/{stolen['id']}/verify", {}, 422)
    assert refused["error"] == "not_proven"
    claim = await owner.call("POST", "/v1/claims", {"key": key}, 201)
    in_head = page.replace(
        '<meta name="generator"',
        f'<meta name="mecene:claim" content="{claim["token"]}">\n    <meta name="generator"',
    )
    proof_site.put("hillbees.ghost.io", "/", in_head, "text/html")
    done = await owner.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["claim"]["proof"] == "https://hillbees.ghost.io/"
    assert (await owner.call("GET", "/v1/account", expect=200))["keys"] == [key]


async def test_a_youtube_handle_proves_its_channel_id_with_it(
    connect: Any, hub: Hub, proof_site: ProofSite
) -> None:
    """Issue 29: a watch page names a channel by its handle, a channel page
    by its id; one creator's money must not wait in escrow under the key
    they did not claim. The handle's About page names the channel's id in
    its head: proving the handle proves that id too, and releases its
    escrow. A channel address a visitor wrote in the body ties nothing, and
    an id another account proved stays theirs."""
    handle, channel = "youtube:@beefilms", "youtube:UCbeefilms0123456789abcd"
    giver, owner, other = connect(), connect(), connect()
    await giver.deposit(2000)
    await giver.settle(OCT, [{"creator": channel, "cents": 300}, {"creator": handle, "cents": 200}])
    page = (PROFILES / "youtube-handle-about.html").read_text()
    claim = await owner.call("POST", "/v1/claims", {"key": handle}, 201)
    proof_site.put(
        "www.youtube.com", "/@beefilms/about", page.replace("OWNER-TEXT", claim["token"])
    )
    done = await owner.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["also_proved"] == [channel]
    assert done["released_cents"] == 500
    assert sorted((await owner.call("GET", "/v1/account", expect=200))["keys"]) == sorted(
        [handle, channel]
    )
    assert await hub.balance_of(f"escrow:{channel}") == 0

    # Another handle whose page names a channel id someone else already owns.
    taken = "youtube:UCtaken0123456789abcdefg"
    mine = await other.call("POST", "/v1/claims", {"key": taken}, 201)
    proof_site.put(
        "www.youtube.com",
        "/channel/UCtaken0123456789abcdefg/about",
        page.replace("OWNER-TEXT", mine["token"]),
    )
    await other.call("POST", f"/v1/claims/{mine['id']}/verify", {}, 200)
    second = connect()
    claim = await second.call("POST", "/v1/claims", {"key": "youtube:@copycat"}, 201)
    proof_site.put(
        "www.youtube.com",
        "/@copycat/about",
        page.replace("OWNER-TEXT", claim["token"]).replace(
            "UCbeefilms0123456789abcd", "UCtaken0123456789abcdefg"
        ),
    )
    done = await second.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["also_proved"] == []
    assert (await second.call("GET", "/v1/account", expect=200))["keys"] == ["youtube:@copycat"]
    assert (await other.call("GET", "/v1/account", expect=200))["keys"] == [taken]


async def test_a_fediverse_key_is_proved_by_its_profile(
    connect: Any, proof_site: ProofSite
) -> None:
    owner = connect()
    claim = await owner.call("POST", "/v1/claims", {"key": "fediverse:@ann@social.example"}, 201)
    actor = "https://social.example/users/ann"
    proof_site.put(
        "social.example",
        "/.well-known/webfinger?resource=acct:ann@social.example",
        json.dumps(
            {"links": [{"rel": "self", "type": "application/activity+json", "href": actor}]}
        ),
        "application/jrd+json",
    )
    proof_site.put(
        "social.example",
        "/users/ann",
        json.dumps({"summary": "hi", "attachment": [{"name": "Mécène", "value": claim["token"]}]}),
        "application/activity+json",
    )
    done = await owner.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["claim"]["proof"] == actor


async def test_flattr_ids_are_issued_not_claimed(connect: Any) -> None:
    out = await connect().call("POST", "/v1/claims", {"key": "flattr:alice"}, 422)
    assert out["error"] == "not_claimable"
    # A platform whose table entry names no field only the owner writes
    # (Buy Me a Coffee, issue 29): refused at once, not a claim that can never pass.
    # A Substack publication: no page the writer alone writes is named yet.
    out = await connect().call("POST", "/v1/claims", {"key": "site:kim.substack.com"}, 422)
    assert out["error"] == "not_claimable"
    out = await connect().call("POST", "/v1/claims", {"key": "buymeacoffee:kim"}, 422)
    assert out["error"] == "not_claimable"
    assert out["message"] == (
        "Buy Me a Coffee keys cannot be proved yet: money for them waits in escrow"
    )


async def test_unclaimed_escrow_goes_back_to_the_givers(
    connect: Any, hub: Hub, clock: FrozenClock
) -> None:
    alice, bob = connect(), connect()
    await alice.deposit(1000)
    await bob.deposit(1000)
    await alice.settle(OCT, [{"creator": "domain:gone.example", "cents": 400}])
    await bob.settle(NOV, [{"creator": "domain:gone.example", "cents": 250}])
    assert await hub.expire_escrow() == 0  # not yet
    clock.set(dt.datetime(2027, 11, 2, tzinfo=dt.UTC))  # 12 months after October 2026
    assert await hub.expire_escrow() == 400
    assert await hub.balance_of(f"user:{alice.person.account}") == 1000
    assert await hub.balance_of(f"user:{bob.person.account}") == 750
    clock.set(dt.datetime(2027, 12, 2, tzinfo=dt.UTC))
    assert await hub.expire_escrow() == 250
    assert await hub.balance_of("escrow:domain:gone.example") == 0


# -- withdrawals ------------------------------------------------------------------------------


async def test_withdrawals_have_a_minimum_and_never_overdraw(connect: Any, hub: Hub) -> None:
    alice, bob = connect(), connect()
    key = (await bob.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    await alice.deposit(5000)
    await bob.deposit(1000)
    await bob.settle(OCT, [{"creator": "domain:example.org", "cents": 200}])
    await alice.settle(OCT, [{"creator": key, "cents": 2000}])  # 1800 after the fee
    body = {"id": str(uuid.uuid4()), "amount_cents": 999}
    assert (await bob.call("POST", "/v1/withdrawals", body, 400))["error"] == "invalid"
    body["amount_cents"] = 1801
    assert (await bob.call("POST", "/v1/withdrawals", body, 402))["error"] == "insufficient_funds"
    body["amount_cents"] = 1500
    first = await bob.call("POST", "/v1/withdrawals", body, 201)
    assert await bob.call("POST", "/v1/withdrawals", body, 200) == first
    assert (await bob.call("GET", "/v1/account", expect=200))["creator_balance_cents"] == 300
    assert await hub.balance_of("payouts") == 1500
    # Alice is no creator: her deposits cannot be withdrawn as earnings.
    out = await alice.call(
        "POST", "/v1/withdrawals", {"id": str(uuid.uuid4()), "amount_cents": 1000}, 402
    )
    assert out["error"] == "insufficient_funds"


# -- counters ------------------------------------------------------------------------------


async def test_counters_count_people_once_and_are_cacheable(connect: Any) -> None:
    alice, bob = connect(), connect()
    await alice.deposit(2000)
    await bob.deposit(2000)
    thing = "https://example.org/post"
    # Each pays at least the 2 € a month gives: only people who paid count.
    await alice.settle(OCT, [{"creator": "flattr:zed", "url": thing, "cents": 200}])
    await alice.settle(NOV, [{"creator": "flattr:zed", "url": thing, "cents": 200}])
    await bob.settle(OCT, [{"creator": "flattr:zed", "cents": 200}], private=True)
    client = alice.client
    resp = await client.get("/v1/counters/thing", params={"url": thing})
    assert await resp.json() == {"url": thing, "flattrs": 1}  # alice, once
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = await client.get("/v1/counters/creator", params={"key": "flattr:zed"})
    body = await resp.json()
    assert (body["creator"], body["flattrers"], body["tokens_cents"]) == ("flattr:zed", 2, 0)
    etag = resp.headers["ETag"]
    again = await client.get(
        "/v1/counters/creator", params={"key": "flattr:zed"}, headers={"If-None-Match": etag}
    )
    assert again.status == 304
    svg = await client.get("/v1/buttons/creator.svg", params={"key": "flattr:zed"})
    assert svg.content_type == "image/svg+xml"
    assert await svg.text() == button_svg(2)
    assert ">2</text>" in button_svg(2)
    bad = await client.get("/v1/counters/thing", params={"url": "javascript:alert(1)"})
    assert bad.status == 400
    assert (await client.get("/v1/counters/people")).status == 404


async def test_the_api_takes_json_only(connect: Any) -> None:
    alice = connect()
    resp = await alice.client.post(
        "/v1/deposits/quote", data="method=card", headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415
    assert (await resp.json())["error"] == "unsupported_media_type"


# -- several settlements at once -------------------------------------------------------------


async def test_concurrent_settlements_balance_to_the_cent(connect: Any, hub: Hub) -> None:
    """Many people settle at once, crediting the same creators (on PostgreSQL,
    truly in parallel transactions that lock the same rows)."""
    import asyncio

    creators = [connect() for _ in range(3)]
    keys = [(await c.call("POST", "/v1/flattr-ids", {}, 201))["key"] for c in creators]
    for c in creators:
        await c.deposit(1000)
        await c.settle(OCT, [{"creator": "domain:example.org", "cents": 200}])
    givers = [connect() for _ in range(12)]
    for g in givers:
        await g.deposit(1000)

    async def settle(i: int, g: HubClient) -> None:
        rows = [{"creator": keys[(i + j) % 3], "cents": 100 + j} for j in range(3)]
        rows.append({"creator": "domain:nobody.example", "cents": 7})
        await g.settle(OCT, rows)

    await asyncio.gather(*(settle(i, g) for i, g in enumerate(givers)))
    total = 12 * (100 + 101 + 102)
    received = 0
    for c in creators:
        received += (await c.call("GET", "/v1/account", expect=200))["creator_balance_cents"]
    assert received + await hub.fees_cents() == total
    assert await hub.balance_of("escrow:domain:nobody.example") == 12 * 7


async def test_two_hub_processes_serve_one_database(
    db_url: str, hub: Hub, clock: FrozenClock, aiohttp_client: Any, proof_site: ProofSite
) -> None:
    """The hub keeps nothing between requests but the database: a second hub
    on the same database (as a second process would be) sees the same
    accounts, and a request replayed to it is refused just the same."""
    engine = open_database(db_url)
    other = Hub(engine, hub.key, clock, SimulatedProvider(), ProofFetcher(via=proof_site.url))
    try:
        first = HubClient(await aiohttp_client(create_app(hub)), Person.new(), clock, JOINED)
        second = HubClient(await aiohttp_client(create_app(other)), first.person, clock)
        await first.deposit(1000)
        headers = first.headers("GET", "/v1/account", b"")
        seen = await first.call("GET", "/v1/account", expect=200, headers=headers, sign=False)
        assert seen["balance_cents"] == 1000
        replayed = await second.call("GET", "/v1/account", expect=401, headers=headers, sign=False)
        assert replayed["error"] == "replayed"
        rows = [{"creator": "flattr:zed", "cents": 300}]
        made = await second.settle(OCT, rows)
        assert await first.settle(OCT, rows, expect=200) == made
        assert (await first.call("GET", "/v1/account", expect=200))["balance_cents"] == 700
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "key",
    [
        "domain:127.0.0.1",
        "domain:10.1.2.3",
        "payment:https://[::1]/pay",
        "domain:localhost",
        # Forms that is_global lets through (issue 13, point 5):
        "payment:https://[::127.0.0.1]/pay",  # IPv4-compatible IPv6
        "payment:https://[::ffff:169.254.169.254]/pay",  # IPv4-mapped metadata address
        "payment:https://[64:ff9b::a9fe:a9fe]/pay",  # NAT64 of 169.254.169.254
        "payment:https://[64:ff9b:1::a00:1]/pay",  # NAT64 local-use prefix
        "payment:https://[fec0::1]/pay",  # site-local
        "payment:https://[2002:7f00:1::]/pay",  # 6to4 of 127.0.0.1
        "payment:https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/pay",  # Teredo
        "payment:https://[ff02::1]/pay",  # multicast
    ],
)
async def test_the_hub_never_fetches_a_proof_from_a_private_address(key: str) -> None:
    """A claim must not turn the hub into a client of its own network (SSRF)."""
    from hub.proofs import ProofError

    fetcher = ProofFetcher()  # no `via`: as in production
    try:
        with pytest.raises(ProofError, match=r"not a public address|non-public"):
            await fetcher.prove(key, "mecene-claim-x")
    finally:
        await fetcher.close()


@pytest.mark.parametrize(
    "key", ["payment:https://pay.example:8443/x", "payment:https://pay.example:80/x"]
)
async def test_the_hub_fetches_proofs_from_port_443_only(key: str) -> None:
    from hub.proofs import ProofError

    fetcher = ProofFetcher()
    try:
        with pytest.raises(ProofError, match="port 443 only"):
            await fetcher.fetch(key.split(":", 1)[1])
    finally:
        await fetcher.close()


async def test_a_name_that_resolves_to_a_hidden_private_address_is_refused() -> None:
    """Resolved once: every address the name gives is checked, and aiohttp
    connects to what was checked."""
    from aiohttp.abc import ResolveResult

    from hub.proofs import PublicOnlyResolver

    class Answers:
        def __init__(self, addresses: list[str]) -> None:
            self.addresses = addresses

        async def resolve(self, host: str, port: int, family: Any) -> list[ResolveResult]:
            return [
                ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
                for a in self.addresses
            ]

        async def close(self) -> None:
            return None

    resolver = PublicOnlyResolver()
    for hidden in ["64:ff9b::a9fe:a9fe", "::127.0.0.1", "fec0::5", "10.0.0.1"]:
        resolver._inner = Answers(["93.184.215.14", hidden])  # type: ignore[assignment]
        with pytest.raises(OSError, match="non-public"):
            await resolver.resolve("pay.example", 443)
    resolver._inner = Answers(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])  # type: ignore[assignment]
    assert len(await resolver.resolve("pay.example", 443)) == 2
    await resolver.close()


async def test_the_list_of_joined_creators_is_published_whole(connect: Any, hub: Hub) -> None:
    """Proved keys only, sorted, cacheable: daemons download it whole and never
    ask about one key (DESIGN.md, "Who has joined")."""
    anon = connect()
    empty = await anon.call("GET", "/v1/creators/joined", expect=200, sign=False)
    assert empty == {"keys": [], "nonprofit": [], "escrow_months": 12}
    bob, carol = connect(), connect()
    keys = [(await c.call("POST", "/v1/flattr-ids", {}, 201))["key"] for c in (bob, carol)]
    await bob.call("POST", "/v1/claims", {"key": "domain:unproved.example"}, 201)
    resp = await anon.client.get("/v1/creators/joined")
    assert resp.status == 200
    assert (await resp.json())["keys"] == sorted(keys)  # the pending claim is not listed
    etag = resp.headers["ETag"]
    assert "max-age" in resp.headers["Cache-Control"]
    again = await anon.client.get("/v1/creators/joined", headers={"If-None-Match": etag})
    assert again.status == 304
    # A non-profit's keys are named (no fee: the daemon's transfer quote says so).
    await hub.set_nonprofit(carol.person.account, True)
    listed = await anon.call("GET", "/v1/creators/joined", expect=200, sign=False)
    assert listed["nonprofit"] == [keys[1]]
    changed = await anon.client.get("/v1/creators/joined", headers={"If-None-Match": etag})
    assert changed.status == 200  # a new list, a new ETag


@pytest.mark.parametrize("command", [["payouts", "2026-11"], ["check"], ["expire-escrow"]])
def test_operator_commands_refuse_a_hub_that_is_not_there(
    tmp_path: Path, command: list[str]
) -> None:
    """`mecene-hub payouts` without --data-dir made an empty hub in the home
    directory and reported on it; the operator's commands now refuse."""
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "MECENE_HUB_DATA_DIR")}
    out = subprocess.run(
        [sys.executable, "-m", "hub", *command],
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out
    assert out.stderr.startswith(f"mecene-hub: no hub at {home}/.local/share/mecene-hub/hub.db")
    assert list(home.iterdir()) == []  # nothing created
    # On a hub that exists, the same command reads it and writes no key.
    hub_dir = tmp_path / "hub"
    migrated = subprocess.run(
        [sys.executable, "-m", "hub", "migrate", "--data-dir", str(hub_dir)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    done = subprocess.run(
        [sys.executable, "-m", "hub", *command, "--data-dir", str(hub_dir)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (hub_dir / "hub.key").exists()


# -- direct transfers (issue 14) ----------------------------------------------------


async def give(client: HubClient, creator: str, cents: int, expect: int = 201, **kw: Any) -> Any:
    body = {"id": kw.pop("id", str(uuid.uuid4())), "creator": creator, "cents": cents, **kw}
    return await client.call("POST", "/v1/transfers", body, expect)


async def test_a_transfer_pays_one_creator_to_the_cent(connect: Any, hub: Hub) -> None:
    """Outside the split, on top of the budget: the fee rounds half up as for
    settlements (10 % of 10.05 € is 1.005 €: 1.01 €), the receipt is signed."""
    alice, bob = connect(), connect()
    await alice.deposit(5000)
    await bob.deposit(1000)
    key = (await bob.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    await bob.settle(NOV, [{"creator": "domain:example.org", "cents": 200}])
    await bob.settle("2026-12", [], expect=409)  # December has not ended: bob gives by transfer
    await give(bob, "domain:example.org", 200)  # 2 € given in December: bob receives
    out = await give(alice, key, 1005, url="https://bob.example/work")
    receipt = json.loads(out["receipt"])
    signing.verify(hub.public_key, out["receipt"].encode(), out["signature"])
    assert (receipt["account"], receipt["creator"], receipt["cents"]) == (
        alice.person.account, key, 1005,
    )  # fmt: skip
    assert (receipt["month"], receipt["credited_cents"], receipt["held_cents"]) == (
        "2026-12",
        1005,
        0,
    )
    me = await bob.call("GET", "/v1/account", expect=200)
    assert me["creator_balance_cents"] == 1005 - 101
    assert me["received"] == {"gross_cents": 1005, "fee_cents": 101, "net_cents": 904}
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 5000 - 1005
    # The giver counts once for the creator, however many times they give.
    await give(alice, key, 100)
    assert await hub.count("creator", key) == 1
    assert await hub.count("thing", "https://bob.example/work") == 1


async def test_a_transfer_is_idempotent_and_refuses_bad_input(connect: Any, hub: Hub) -> None:
    alice = connect()
    await alice.deposit(2000)
    transfer_id = str(uuid.uuid4())
    first = await give(alice, "domain:example.org", 500, id=transfer_id)
    again = await give(alice, "domain:example.org", 500, 200, id=transfer_id)
    assert again == first  # the same receipt, nothing moved twice
    other = await give(alice, "domain:example.org", 700, 409, id=transfer_id)
    assert other["error"] == "id_conflict"
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 1500
    assert (await give(alice, "domain:example.org", 99, 400))["message"] == (
        "a transfer is 1.00 € to 1000.00 €"
    )
    broke = await give(alice, "domain:example.org", 1600, 402)
    assert (broke["error"], broke["balance_cents"]) == ("insufficient_funds", 1500)
    assert (await give(alice, "nope:x", 500, 400))["error"] == "invalid"
    assert (await give(alice, "domain:example.org", 5.5, 400))["error"] == "invalid"  # type: ignore[arg-type]
    mine = (await alice.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    assert (await give(alice, mine, 500, 409))["error"] == "own_key"
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 1500
    assert await hub.balance_of("escrow:domain:example.org") == 500


async def test_the_same_transfer_sent_twice_at_once_moves_money_once(
    connect: Any, hub: Hub
) -> None:
    """A daemon whose first try timed out sends the transfer again while the
    first is still in its transaction. On PostgreSQL the second waited on the
    first's ledger row and then failed with a 500 (DuplicateEntry); now it
    answers as a replay, with the same receipt."""
    import asyncio

    alice = connect()
    await alice.deposit(5000)
    transfer_id = str(uuid.uuid4())
    body = {"id": transfer_id, "creator": "domain:example.org", "cents": 500}
    answers = await asyncio.gather(
        *(alice.call("POST", "/v1/transfers", body) for _ in range(4)),
        return_exceptions=True,
    )
    assert all(isinstance(a, dict) and "receipt" in a for a in answers), answers
    receipts = {a["receipt"] for a in answers}  # type: ignore[index]
    assert len(receipts) == 1
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 4500
    assert await hub.balance_of("escrow:domain:example.org") == 500


async def test_a_transfer_waits_in_escrow_then_goes_to_whoever_proves_the_key(
    connect: Any, hub: Hub, proof_site: ProofSite, clock: FrozenClock
) -> None:
    alice, dana = connect(), connect()
    await alice.deposit(3000)
    await give(alice, "domain:dana.example", 1000)
    assert await hub.balance_of("escrow:domain:dana.example") == 1000
    claim = await dana.call("POST", "/v1/claims", {"key": "domain:dana.example"}, 201)
    proof_site.put("dana.example", "/.well-known/mecene-claim.txt", claim["token"])
    done = await dana.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    assert done["released_cents"] == 1000
    # "To receive, you must give": dana has not given in December; she does now.
    me = await dana.call("GET", "/v1/account", expect=200)
    assert (me["creator_balance_cents"], me["withheld_cents"]) == (0, 1000)
    await dana.deposit(500)
    await give(dana, "domain:example.org", 200)
    me = await dana.call("GET", "/v1/account", expect=200)
    assert (me["creator_balance_cents"], me["withheld_cents"]) == (900, 0)
    # Unclaimed escrow still goes back to the giver after the escrow period.
    await give(alice, "domain:gone.example", 300)
    clock.set(dt.datetime(2028, 1, 3, tzinfo=dt.UTC))  # 12 months after December 2026
    assert await hub.expire_escrow() == 300 + 200  # alice's, and dana's 2 € to example.org
    assert (await alice.call("GET", "/v1/account", expect=200))["balance_cents"] == 3000 - 1000


def test_hub_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    """Several `mecene-hub serve` share one key file: started at once, each
    creates a key, and the first to link its file into place wins."""
    from concurrent.futures import ThreadPoolExecutor

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from hub.runner import load_or_create_key

    path = tmp_path / "hub" / "hub.key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_or_create_key(path), range(8)))
    public = {k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for k in keys}
    assert len(public) == 1
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["hub.key"]  # no temporary file left


async def test_the_same_flattrs_cost_the_same_fee_on_every_path(
    connect: Any, hub: Hub, proof_site: ProofSite
) -> None:
    """One owner of two keys, 5 ct to each from one settlement: 10 % of 5 ct
    rounds up to 1 ct per key, 2 ct in all — whether credited at once, or
    withheld until the owner gives and then released (which rounded across
    the keys: 1 ct), or held in escrow and then claimed."""
    bob = connect()
    await bob.deposit(2000)
    k1 = (await bob.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    claim = await bob.call("POST", "/v1/claims", {"key": "domain:bob.example"}, 201)
    proof_site.put("bob.example", "/.well-known/mecene-claim.txt", claim["token"])
    await bob.call("POST", f"/v1/claims/{claim['id']}/verify", {}, 200)
    k2 = "domain:bob.example"
    rows = [{"creator": k1, "cents": 5}, {"creator": k2, "cents": 5}]

    async def net_of(pay: Any) -> int:
        before = (await bob.call("GET", "/v1/account", expect=200))["creator_balance_cents"]
        await pay()
        after = (await bob.call("GET", "/v1/account", expect=200))["creator_balance_cents"]
        return int(after - before)

    # Credited at once: bob gave in October first.
    await bob.settle(OCT, [{"creator": "domain:example.org", "cents": 200}])
    alice = connect()
    await alice.deposit(1000)
    at_once = await net_of(lambda: alice.settle(OCT, rows))
    # Withheld (bob has not given in November yet), then released when he does.
    carol = connect()
    await carol.deposit(1000)
    await carol.settle(NOV, rows)

    async def bob_gives() -> None:
        await bob.settle(NOV, [{"creator": "domain:example.org", "cents": 200}])

    released = await net_of(bob_gives)
    # Held in escrow under a key nobody proved, then claimed.
    dave = connect()
    await dave.deposit(1000)
    k3 = "domain:bob3.example"
    two = [
        {"creator": k3, "cents": 5, "url": "https://bob3.example/a"},
        {"creator": k3, "cents": 5, "url": "https://bob3.example/b"},
    ]
    await dave.settle(OCT, two)
    await give(bob, "domain:example.org", 200)  # bob gives in December, when the claim is
    claim3 = await bob.call("POST", "/v1/claims", {"key": k3}, 201)
    proof_site.put("bob3.example", "/.well-known/mecene-claim.txt", claim3["token"])
    claimed = await net_of(lambda: bob.call("POST", f"/v1/claims/{claim3['id']}/verify", {}, 200))
    assert (at_once, released) == (8, 8)  # 2 ct of fees on each path
    assert claimed == 10 - money.creator_fee_cents(10, nonprofit=False)  # one key: as at once


async def test_postgresql_itself_refuses_an_entry_that_does_not_sum_to_zero() -> None:
    """The ledger's zero sum, enforced by the database too where the engine
    allows (a statement-level trigger, migrations 0005 and 0006): an entry's postings
    are written by one statement, and one that does not sum to zero, written
    behind the ledger's back, fails; so does an entry written leg by leg."""
    import contextlib

    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError

    from hub.schema import entries, ledger_accounts, postings

    async with contextlib.aclosing(fresh_pg_database()) as databases:
        url = await anext(databases)
        engine = open_database(url)
        await migrate(engine)
        try:
            async with engine.begin() as conn:  # balanced: fine
                await conn.execute(
                    sa.insert(ledger_accounts),
                    [
                        {"name": "a", "may_go_negative": True},
                        {"name": "b", "may_go_negative": False},
                    ],
                )
                entry = await conn.scalar(
                    sa.insert(entries)
                    .values(kind="t", ref="ok", created_at=0)
                    .returning(entries.c.id)
                )
                await conn.execute(
                    sa.insert(postings).values(
                        [
                            {"entry_id": entry, "ledger_account": "a", "amount_cents": -5},
                            {"entry_id": entry, "ledger_account": "b", "amount_cents": 5},
                        ]
                    )
                )
            with pytest.raises(DBAPIError, match="does not sum to zero"):
                async with engine.begin() as conn:
                    bad = await conn.scalar(
                        sa.insert(entries)
                        .values(kind="t", ref="bad", created_at=0)
                        .returning(entries.c.id)
                    )
                    await conn.execute(
                        sa.insert(postings).values(entry_id=bad, ledger_account="b", amount_cents=7)
                    )
            with pytest.raises(DBAPIError, match="does not sum to zero"):
                async with engine.begin() as conn:  # balanced in the end, leg by leg
                    split = await conn.scalar(
                        sa.insert(entries)
                        .values(kind="t", ref="split", created_at=0)
                        .returning(entries.c.id)
                    )
                    for account, cents in (("a", -3), ("b", 3)):
                        await conn.execute(
                            sa.insert(postings).values(
                                entry_id=split, ledger_account=account, amount_cents=cents
                            )
                        )
            # The references the foreign keys checked row by row (migration
            # 0006): checked once per statement, and what they refer to stays.
            with pytest.raises(DBAPIError, match="ledger account nowhere that does not exist"):
                async with engine.begin() as conn:
                    orphan = await conn.scalar(
                        sa.insert(entries)
                        .values(kind="t", ref="orphan", created_at=0)
                        .returning(entries.c.id)
                    )
                    await conn.execute(
                        sa.insert(postings).values(
                            [
                                {"entry_id": orphan, "ledger_account": "a", "amount_cents": -1},
                                {
                                    "entry_id": orphan,
                                    "ledger_account": "nowhere",
                                    "amount_cents": 1,
                                },
                            ]
                        )
                    )
            with pytest.raises(DBAPIError, match="ledger entry 999999 that does not exist"):
                async with engine.begin() as conn:
                    await conn.execute(
                        sa.insert(postings).values(
                            [
                                {"entry_id": 999999, "ledger_account": "a", "amount_cents": -1},
                                {"entry_id": 999999, "ledger_account": "b", "amount_cents": 1},
                            ]
                        )
                    )
            for statement in (
                sa.delete(entries),
                sa.update(entries).values(id=entries.c.id + 1000),
                sa.delete(ledger_accounts).where(ledger_accounts.c.name == "b"),
                sa.update(ledger_accounts)
                .values(name="renamed")
                .where(ledger_accounts.c.name == "b"),
            ):
                with pytest.raises(DBAPIError, match="never deleted"):
                    async with engine.begin() as conn:
                        await conn.execute(statement)
            async with engine.connect() as conn:
                refs = (await conn.execute(sa.select(entries.c.ref))).scalars().all()
                assert refs == ["ok"]  # the refused entries were rolled back whole
                names = (await conn.execute(sa.select(ledger_accounts.c.name))).scalars().all()
                assert sorted(names) == ["a", "b"]
        finally:
            await engine.dispose()
