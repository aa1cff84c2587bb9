"""Unlinkable contributions at the hub (issue 17, hub/tokens.py), on both
engines: a month settled as its spend alone, blind-signed tokens issued
against it, redeemed to creators with no account, routed by the payout run
with the usual rules; and a database that then ties no account to a creator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

import hub.tokens as hub_tokens
from hub.db import migrate, open_database
from hub.http import create_app
from hub.ledger import Creator, Escrow, Tokens, User
from hub.proofs import ProofFetcher
from hub.provider import SimulatedProvider
from hub.service import Hub
from mecene import money, tokens, tokenwire
from mecene.encoding import b64u, canonical, unb64u
from mecene.settlement import Settlement
from mecene.time import FrozenClock
from tests.support.hubs import HubClient, Person, rows_tying

OCT = "2026-10"
NOV = "2026-11"
D = tokens.DENOMINATION


@pytest.fixture(scope="session")
def key_pool() -> list[rsa.RSAPrivateKey]:
    """RSA-2048 keys made once: a hub makes nine a month, and making them is
    what would take the time of these tests."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(27)]


@pytest.fixture(autouse=True)
def pooled_keys(monkeypatch: pytest.MonkeyPatch, key_pool: list[rsa.RSAPrivateKey]) -> None:
    pool: Iterator[rsa.RSAPrivateKey] = itertools.cycle(key_pool)
    monkeypatch.setattr(hub_tokens, "_make_key", lambda: next(pool))


class Wallet:
    """What a daemon does with tokens: split, blind, finish, redeem."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    async def keys(self, month: str) -> dict[int, rsa.RSAPublicKey]:
        out = await self.client.call("GET", f"/v1/token-keys/{month}", expect=200, sign=False)
        hub_key = (await self.client.call("GET", "/v1", expect=200, sign=False))["public_key"]
        directory = tokenwire.parse_directory(month, out, hub_key)
        self.hub_key, self.directory = hub_key, directory.sha256
        return {cents: k.public for cents, k in directory.by_cents().items()}

    async def tokens_for(
        self, month: str, allocations: list[tuple[str, int]]
    ) -> list[tuple[str, tokens.Token, bytes]]:
        """Tokens worth each allocation, issued: (creator, token, prefix)."""
        keys = await self.keys(month)
        assert all(cents % D == 0 for _c, cents in allocations), "whole tokens"
        wanted = [(c, D) for c, cents in allocations for _ in range(cents // D)]
        pending = [(c, d, tokens.begin(keys[d])) for c, d in wanted]
        body = self.request(month, [p for _c, _d, p in pending])
        out = await self.client.call("POST", "/v1/tokens", body, expect=201)
        finished = []
        answer = tokenwire.parse_issue_answer(out, len(pending))
        # Every issuance is the hub's signed word on the month's one directory.
        receipt = tokenwire.IssueReceipt.check(self.hub_key, answer.receipt, answer.signature)
        assert receipt == tokenwire.IssueReceipt(
            self.hub_key,
            self.client.person.account,
            f"month:{month}",
            month,
            tokenwire.issue_sha256(body),
            len(pending),
            self.directory,
        )
        for (creator, d, p), sig in zip(pending, answer.blind_signatures, strict=True):
            finished.append((creator, p.finish(keys[d], sig), p.prefix))
        return finished

    @staticmethod
    def request(month: str, pending: list[tokens.Pending]) -> dict[str, Any]:
        return tokenwire.build_issue(month, pending)

    async def redeem(
        self, creator: str, token: tokens.Token, prefix: bytes, expect: int | None = 201
    ) -> Any:
        body = tokenwire.build_redemption(tokenwire.Redemption(token, prefix, creator))
        return await self.client.call("POST", "/v1/tokens/redeem", body, expect=expect, sign=False)


async def settle_unlinkable(client: HubClient, month: str, spend: int, expect: int = 201) -> Any:
    body = client.person.settlement(month, [], unlinkable_spend=spend)
    return await client.call("POST", "/v1/settlements", body, expect)


async def test_an_unlinkable_month_pays_creators_and_ties_no_account_to_them(
    connect: Any, hub: Hub
) -> None:
    alice, bob = connect(), connect()
    bob_key = (await bob.call("POST", "/v1/flattr-ids", {}, 201))["key"]
    await bob.deposit(1000)
    await bob.settle(OCT, [{"creator": "domain:bob-reads.example", "cents": 200}])  # bob gave
    await alice.deposit(2000)
    unproved = "domain:not-joined.example"
    # Not a whole number of tokens: refused, and nothing is debited.
    out = await settle_unlinkable(alice, OCT, 735, expect=400)
    assert out["error"] == "invalid" and "whole number of 0.10 € tokens" in out["message"]
    assert await hub.balance_of(User(alice.person.account)) == 2000
    receipt = json.loads((await settle_unlinkable(alice, OCT, 730))["receipt"])
    assert receipt["spend_cents"] == 730
    assert await hub.balance_of(Tokens(OCT)) == 730  # debited once, waiting for tokens

    wallet = Wallet(alice)
    issued = await wallet.tokens_for(OCT, [(bob_key, 520), (unproved, 210)])
    # One value for every token: none tells whose it was by its amount.
    assert {hub.tokens._keys[t.key_id.hex()].denomination_cents for _c, t, _p in issued} == {D}
    assert len(issued) == 73
    answers = [await wallet.redeem(c, t, p) for c, t, p in issued]
    assert [(a["creator"], a["month"]) for a in answers] == [(c, OCT) for c, _t, _p in issued]
    # Sent again (a daemon that crashed before it saw the answer): the same answer.
    creator, token, prefix = issued[0]
    assert await wallet.redeem(creator, token, prefix, expect=200) == answers[0]
    # To another creator: a double spend, refused.
    spent = await wallet.redeem(unproved, token, prefix, expect=409)
    assert spent["error"] == "token_spent"

    await hub.run_payouts()
    assert await hub.balance_of(Tokens(OCT)) == 0
    # Each token pays the fee: a whole cent of each of its 10 (none escapes it).
    assert money.creator_fee_cents(D, nonprofit=False) == 1
    assert await hub.balance_of(Creator(bob.person.account)) == 520 - 52
    assert await hub.balance_of(Escrow(unproved)) == 210

    # The counter shows tokens as an amount; the button counts people only,
    # so no one's own tokens can raise it (issue 27, point 8).
    counter = await alice.call("GET", f"/v1/counters/creator?key={bob_key}", expect=200, sign=False)
    assert (counter["flattrers"], counter["tokens_cents"]) == (0, 520)
    svg = await alice.call("GET", f"/v1/buttons/creator.svg?key={bob_key}", expect=200, sign=False)
    assert ">0</text>" in svg

    # No row of any table holds alice's account with a key she paid.
    assert await rows_tying(hub.engine, alice.person.account, {bob_key, unproved}) == []
    async with hub.engine.connect() as conn:
        document = await conn.scalar(
            sa.text("SELECT document FROM settlements WHERE account = :a"),
            {"a": alice.person.account},
        )
    doc = json.loads(document)
    assert doc["allocations"] == [] and doc["spend_cents"] == 730 and doc["unlinkable"] is True


async def test_issuance_is_checked_and_idempotent(connect: Any, hub: Hub) -> None:
    alice = connect()
    await alice.deposit(2000)
    wallet = Wallet(alice)
    keys = await wallet.keys(OCT)
    assert list(keys) == [D]  # one key a month
    pending = [tokens.begin(keys[D]) for _ in range(70)]
    # No settlement for the month yet.
    out = await alice.call("POST", "/v1/tokens", wallet.request(OCT, pending), expect=404)
    assert out["error"] == "not_found"
    await settle_unlinkable(alice, OCT, 700)
    # Worth more, or less, than the spend.
    out = await alice.call("POST", "/v1/tokens", wallet.request(OCT, pending[:1]), expect=400)
    assert "worth 10 cents" in out["message"]
    first = await alice.call("POST", "/v1/tokens", wallet.request(OCT, pending), expect=201)
    again = await alice.call("POST", "/v1/tokens", wallet.request(OCT, pending), expect=200)
    assert again == first  # the same request, the same signatures
    other = [tokens.begin(keys[D]) for _ in range(70)]
    out = await alice.call("POST", "/v1/tokens", wallet.request(OCT, other), expect=409)
    assert out["error"] == "tokens_issued"
    # Another month's key, a malformed request, a month settled with allocations.
    nov = await wallet.keys(NOV)
    mixed = wallet.request(OCT, [tokens.begin(nov[D]), *pending[1:]])
    out = await alice.call("POST", "/v1/tokens", mixed, expect=400)
    assert "not one of 2026-10's token keys" in out["message"]
    bad = wallet.request(OCT, pending)
    bad["tokens"][0]["request"] = b64u(b"\x00\x02" + b"x" * 10)
    assert (await alice.call("POST", "/v1/tokens", bad, expect=400))["error"] == "invalid"
    bob = connect()
    await bob.deposit(1000)
    await bob.settle(OCT, [{"creator": "domain:example.org", "cents": 700}])
    out = await bob.call("POST", "/v1/tokens", Wallet(bob).request(OCT, pending), expect=409)
    assert out["error"] == "not_unlinkable"
    # Next month's key is fixed and published already (key consistency: a
    # daemon pins it before the month begins); later months have none yet.
    await alice.call("GET", "/v1/token-keys/2027-01", expect=200, sign=False)
    out = await alice.call("GET", "/v1/token-keys/2027-02", expect=404, sign=False)
    assert out["error"] == "not_found"


async def test_settlements_stored_before_the_column_say_whether_they_are_unlinkable(
    db_url: str,
) -> None:
    """Migration 0008: issuance reads a settlement's `unlinkable` column, no
    longer its parsed document; settlements stored before the column get it
    from their canonical document, each engine."""
    engine = open_database(db_url)
    try:
        await migrate(engine, "0007")
        plain = Settlement("A" * 43, OCT, 700, False, ())
        tokens_only = Settlement("B" * 43, OCT, 500, True, (), unlinkable=True)
        async with engine.begin() as conn:
            for doc in (plain, tokens_only):
                await conn.execute(
                    sa.text("INSERT INTO accounts (id, created_at) VALUES (:a, 0)"),
                    {"a": doc.account},
                )
                await conn.execute(
                    sa.text(
                        "INSERT INTO settlements (account, month, document, signature, sha256,"
                        " spend_cents, receipt, receipt_signature, received_at) VALUES"
                        " (:a, :m, :d, 's', 'h', :c, 'r', 's', 0)"
                    ),
                    {
                        "a": doc.account,
                        "m": doc.month,
                        "d": canonical(doc.as_json()).decode(),
                        "c": doc.spend_cents,
                    },
                )
        await migrate(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT account, unlinkable FROM settlements ORDER BY account")
            )
            assert [(a, bool(u)) for a, u in rows] == [
                (plain.account, False),
                (tokens_only.account, True),
            ]
    finally:
        await engine.dispose()


async def test_forged_unknown_and_expired_tokens_are_refused(
    connect: Any, hub: Hub, clock: FrozenClock
) -> None:
    alice = connect()
    await alice.deposit(1000)
    await settle_unlinkable(alice, OCT, 200)
    wallet = Wallet(alice)
    issued = await wallet.tokens_for(OCT, [("domain:example.org", 200)])
    assert len(issued) == 20
    creator, token, prefix = issued[0]
    # A signature that is not the hub's; a prefix that is not the one signed.
    forged = tokens.Token(token.nonce, token.key_id, bytes(len(token.authenticator)))
    assert (await wallet.redeem(creator, forged, prefix, expect=400))["error"] == "bad_token"
    assert (await wallet.redeem(creator, token, b"\x01" * 32, expect=400))["error"] == "bad_token"
    # A key this hub never had.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pending = tokens.begin(stranger)
    unknown = tokens.Token(pending.nonce, pending.key_id, token.authenticator)
    assert (await wallet.redeem(creator, unknown, prefix, expect=400))["error"] == "bad_token"
    # Not JSON of the right shape, not a token at all.
    body = {"token": b64u(b"short"), "prefix": b64u(prefix), "creator": creator}
    out = await alice.call("POST", "/v1/tokens/redeem", body, expect=400, sign=False)
    assert out["error"] == "bad_token"
    out = await alice.call("POST", "/v1/tokens/redeem", {"token": 1}, expect=400, sign=False)
    assert out["error"] == "invalid"
    # Past the escrow period of its month: expired, and its money stays where it is.
    limit = hub.tokens.redeemable_until(OCT)
    clock.set(dt.datetime.fromtimestamp(limit, dt.UTC))
    assert (await wallet.redeem(creator, token, prefix, expect=410))["error"] == "token_expired"
    assert await hub.balance_of(Tokens(OCT)) == 200
    # The operator's report says so: issued, never redeemed, held for good.
    (october,) = await hub_tokens.report(hub.tokens)
    assert (october["month"], october["expired"], october["held_cents"]) == (OCT, True, 200)
    assert october["issued"] == october["unredeemed"] == {"tokens": 20, "cents": 200}
    assert october["redeemed"] == {"tokens": 0, "cents": 0}
    # Its keys are no longer published, nor signed with (a month as old as that).
    out = await alice.call("GET", f"/v1/token-keys/{OCT}", expect=410, sign=False)
    assert out["error"] == "token_expired"
    late = Wallet(alice).request(OCT, [])
    request = b"\x00\x02" + token.key_id[-1:] + b"x" * 256
    late["tokens"] = [{"key": token.key_id.hex(), "request": b64u(request)}]
    out = await alice.call("POST", "/v1/tokens", late, expect=410)
    assert out["error"] == "token_expired"
    # October's settlement sent again still gets its receipt; a month that
    # old settled as tokens for the first time is refused, and debits nothing.
    assert "receipt" in await settle_unlinkable(alice, OCT, 200, expect=200)
    bob = connect()
    await bob.deposit(1000)
    before = await hub.balance_of(User(bob.person.account))
    out = await settle_unlinkable(bob, OCT, 200, expect=410)
    assert out["error"] == "token_expired"
    assert await hub.balance_of(User(bob.person.account)) == before


async def test_a_direct_transfer_as_tokens_debits_once_and_names_no_creator(
    connect: Any, hub: Hub
) -> None:
    alice = connect()
    await alice.deposit(1000)
    wallet = Wallet(alice)
    month = hub.month()
    keys = await wallet.keys(month)
    pending = [tokens.begin(keys[D]) for _ in range(35)]
    body = wallet.request(month, pending)
    body["transfer"] = {"id": "gift-0001", "cents": 350}
    first = await alice.call("POST", "/v1/tokens", body, expect=201)
    again = await alice.call("POST", "/v1/tokens", body, expect=200)
    assert again == first
    assert await hub.balance_of(User(alice.person.account)) == 1000 - 350  # once
    assert await hub.balance_of(Tokens(month)) == 350
    # Another body for the same id; tokens worth another amount; too little money.
    other = dict(
        body,
        tokens=wallet.request(month, [tokens.begin(keys[D]) for _ in range(35)])["tokens"],
    )
    out = await alice.call("POST", "/v1/tokens", other, expect=409)
    assert out["error"] == "tokens_issued"
    short = dict(body, transfer={"id": "gift-0002", "cents": 400})
    assert (
        "worth 350 cents" in (await alice.call("POST", "/v1/tokens", short, expect=400))["message"]
    )
    big = [tokens.begin(keys[D]) for _ in range(100)]
    broke = dict(wallet.request(month, big), transfer={"id": "gift-0003", "cents": 1000})
    out = await alice.call("POST", "/v1/tokens", broke, expect=402)
    assert out["error"] == "insufficient_funds"
    assert await hub.balance_of(User(alice.person.account)) == 650  # nothing taken
    # Redeemed, its money reaches the creator's escrow; the hub never heard whose.
    for p, sig in zip(pending, first["blind_signatures"], strict=True):
        token = p.finish(keys[D], unb64u(sig))
        await wallet.redeem("domain:gift.example", token, p.prefix)
    await hub.run_payouts()
    assert await hub.balance_of(Escrow("domain:gift.example")) == 350
    assert await hub.balance_of(Tokens(month)) == 0


async def test_a_token_is_spent_once_across_hub_processes(
    connect: Any, hub: Hub, db_url: str, clock: FrozenClock, aiohttp_client: Any
) -> None:
    """Two hubs on one database (as two processes behind the load balancer):
    the same token sent to both at once, for two creators, is taken by one."""
    alice = connect()
    await alice.deposit(1000)
    await settle_unlinkable(alice, OCT, 500)
    issued = await Wallet(alice).tokens_for(OCT, [("domain:one.example", 500)])
    creator, token, prefix = issued[0]
    engine = open_database(db_url)
    other = Hub(engine, hub.key, clock, SimulatedProvider(), ProofFetcher())
    try:
        second = Wallet(HubClient(await aiohttp_client(create_app(other)), Person.new(), clock))
        first = Wallet(alice)
        results = await asyncio.gather(
            first.redeem(creator, token, prefix, expect=None),
            second.redeem("domain:two.example", token, prefix, expect=None),
            return_exceptions=True,
        )
        errors = sorted(r.get("error", "taken") for r in results if isinstance(r, dict))
        assert errors == ["taken", "token_spent"], results
    finally:
        await other.fetcher.close()
        await engine.dispose()
    async with hub.engine.connect() as conn:
        spent = (await conn.execute(sa.select(hub_tokens.spent_tokens.c.creator))).scalars().all()
    assert len(spent) == 1
    await hub.run_payouts()
    # The one token's ten cents left the month's tokens; the other 49 wait.
    assert await hub.balance_of(Tokens(OCT)) == 500 - D


async def test_redemptions_arriving_together_share_one_commit(connect: Any, hub: Hub) -> None:
    """Thirty tokens redeemed at once, and two of them twice more in the same
    moment (the same token to the same creator: answered again; to another:
    refused): the redemptions are written in a few commits, not thirty, and
    each token is spent once."""
    alice = connect()
    await alice.deposit(2000)
    await settle_unlinkable(alice, OCT, 30 * D)
    issued = await Wallet(alice).tokens_for(OCT, [(f"domain:s{i}.example", D) for i in range(30)])
    assert len(issued) == 30
    (c0, t0, p0), (_c1, t1, p1) = issued[:2]

    def request(creator: str, token: tokens.Token, prefix: bytes) -> hub_tokens.RedeemRequest:
        body = {"token": b64u(token.serialise()), "prefix": b64u(prefix), "creator": creator}
        return hub_tokens.redeem_request(body)

    commits: list[Any] = []

    def committed(conn: Any) -> None:
        commits.append(conn)

    sa.event.listen(hub.engine.sync_engine, "commit", committed)
    try:
        results = await asyncio.gather(
            *(hub.tokens.redeem(request(c, t, p)) for c, t, p in issued),
            hub.tokens.redeem(request(c0, t0, p0)),
            hub.tokens.redeem(request("domain:elsewhere.example", t1, p1)),
            return_exceptions=True,
        )
    finally:
        sa.event.remove(hub.engine.sync_engine, "commit", committed)
    created = [r for r in results[:30] if not isinstance(r, BaseException)]
    assert [made for made, _answer in created] == [True] * 30
    assert results[30] == (False, {"month": OCT, "cents": D, "creator": c0})
    assert isinstance(results[31], hub_tokens.HubError) and results[31].code == "token_spent"
    assert 1 <= len(commits) < 10, len(commits)  # batches, not one commit per token
    async with hub.engine.connect() as conn:
        spent = await conn.scalar(sa.select(sa.func.count()).select_from(hub_tokens.spent_tokens))
    assert spent == 30
    await hub.run_payouts()
    assert await hub.balance_of(Tokens(OCT)) == 0


async def test_a_repeated_issuance_is_answered_from_the_first_never_signed_again(
    connect: Any, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27, point 9: a paid issuance, then free repeats. The hub signs
    each token once; the repeats get the kept answer. Its times are kept to
    the hour, and the answer is forgotten once the month's tokens expire."""
    signed: list[int] = []
    real = hub_tokens.blindrsa.blind_sign

    def counting(key: Any, blinded: bytes) -> bytes:
        signed.append(1)
        return real(key, blinded)

    monkeypatch.setattr(hub_tokens.blindrsa, "blind_sign", counting)
    hub.clock.set(dt.datetime(2026, 12, 2, 12, 34, 56, tzinfo=dt.UTC))  # not on the hour
    alice = connect()
    await alice.deposit(2000)
    wallet = Wallet(alice)
    keys = await wallet.keys(OCT)
    pending = [tokens.begin(keys[D]) for _ in range(170)]
    await settle_unlinkable(alice, OCT, 1700)
    first = await alice.call("POST", "/v1/tokens", wallet.request(OCT, pending), expect=201)
    assert len(signed) == len(pending)
    for _ in range(3):
        again = await alice.call("POST", "/v1/tokens", wallet.request(OCT, pending), expect=200)
        assert again == first
    assert len(signed) == len(pending)  # never signed again
    # The signatures still finish the tokens, which redeem.
    answer = tokenwire.parse_issue_answer(again, len(pending))
    token = pending[0].finish(keys[D], answer.blind_signatures[0])
    await wallet.redeem("domain:example.org", token, pending[0].prefix)
    async with hub.engine.connect() as conn:
        issued = (await conn.execute(sa.select(hub_tokens.token_issues))).one()
        spent = (await conn.execute(sa.select(hub_tokens.spent_tokens))).one()
    # Kept to the hour: not a second the database could be joined on.
    assert issued.created_at % 3600 == 0 and spent.redeemed_at % 3600 == 0
    assert issued.answer is not None
    assert await hub.tokens.forget_answers() == 0  # October's tokens are live
    hub.clock.set(dt.datetime.fromtimestamp(hub.tokens.redeemable_until(OCT), dt.UTC))
    assert await hub.tokens.forget_answers() == 1
    async with hub.engine.connect() as conn:
        assert (await conn.execute(sa.select(hub_tokens.token_issues.c.answer))).scalar() is None
    out = await alice.call("POST", "/v1/tokens", wallet.request(OCT, pending), expect=410)
    assert out["error"] == "token_expired"


async def test_migration_0011_gives_keys_rfc_9578_ids_and_keeps_the_old_ones(
    db_url: str, key_pool: list[rsa.RSAPrivateKey]
) -> None:
    """Issue 27, point 10: a key made before 0011 has the plain SPKI's hash
    for id; after it, RFC 9578's id, the old one kept in `plain_id`, and the
    spent tokens follow (each engine)."""
    public = key_pool[0].public_key()
    old, new = tokens.plain_key_id(public).hex(), tokens.key_id(public).hex()
    engine = open_database(db_url)
    try:
        await migrate(engine, "0010")
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO token_keys (id, month, denomination_cents, public_key,"
                    " private_key, created_at) VALUES (:id, :m, 10, :pub, 'pem', 0)"
                ),
                {"id": old, "m": OCT, "pub": b64u(tokens.spki(public))},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO spent_tokens (id, key_id, month, creator, creator_hash, cents,"
                    " redeemed_at) VALUES ('s1', :id, :m, 'domain:a.example', 'h', 10, 0)"
                ),
                {"id": old, "m": OCT},
            )
        await migrate(engine)
        async with engine.connect() as conn:
            keys = (await conn.execute(sa.text("SELECT id, plain_id FROM token_keys"))).all()
            spent = (await conn.execute(sa.text("SELECT key_id FROM spent_tokens"))).all()
        assert [tuple(k) for k in keys] == [(new, old)]
        assert [s[0] for s in spent] == [new]
    finally:
        await engine.dispose()


async def test_a_token_signed_before_the_rfc_ids_still_redeems(connect: Any, hub: Hub) -> None:
    """A daemon of an earlier version holds tokens whose signed input names
    the key's plain id: the hub finds the key by it (`plain_id`) and credits
    the creator once; the directory names the key by RFC 9578's id only."""
    alice = connect()
    await alice.deposit(200)
    await settle_unlinkable(alice, OCT, 10)
    (key,) = await hub.tokens.keys_of(OCT)
    plain = tokens.plain_key_id(key.public)
    async with hub.engine.begin() as conn:  # what migration 0011 leaves for such a key
        await conn.execute(
            sa.text("UPDATE token_keys SET plain_id = :p WHERE id = :i"),
            {"p": plain.hex(), "i": key.id},
        )
    hub.tokens._keys.clear()
    hub.tokens._months.clear()
    directory = await alice.call("GET", f"/v1/token-keys/{OCT}", expect=200, sign=False)
    assert [k["id"] for k in directory["keys"]] == [key.id] == [tokens.key_id(key.public).hex()]
    # Issued as the earlier version did: the plain id inside the token.
    pending = tokens.begin(key.public)
    pending = tokens.Pending(
        nonce=pending.nonce,
        key_id=plain,
        blinded=tokens.blindrsa.blind(
            key.public,
            tokens.blindrsa.prepare(tokens.token_input(pending.nonce, plain), tokens.VARIANT),
            tokens.VARIANT,
        ),
    )
    token = pending.finish(
        key.public, tokens.blindrsa.blind_sign(key.private, pending.blinded.blinded_msg)
    )
    wallet = Wallet(alice)
    out = await wallet.redeem("domain:example.org", token, pending.prefix)
    assert out["creator"] == "domain:example.org"
    again = await wallet.redeem("domain:example.org", token, pending.prefix, expect=200)
    assert again == out
    await hub.run_payouts()  # the month's spend was one token (books checked at close)
    async with hub.engine.connect() as conn:
        assert (await conn.scalar(sa.text("SELECT key_id FROM spent_tokens"))) == key.id
