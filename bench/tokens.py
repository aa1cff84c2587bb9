"""Unlinkable contributions: what tokens cost the hub, and what they cost a
daemon's month (issue 17).

1. The hub's token issuance and redemption per second, on PostgreSQL, in one
   process, through the hub's own code (hub/tokens.py: `TokenDesk.issue` and
   `TokenDesk.redeem`, their checks and writes; no HTTP), against raw
   RSA-2048 signing and verification (`cryptography`, RSASSA-PSS SHA-384)
   on one core in the same run.
2. The bytes and requests a month of 50 flattrs costs a daemon under
   unlinkable contributions, against a plain settlement of the same month:
   the JSON bodies of every request and answer, as the daemon sends them.

    .venv/bin/python bench/tokens.py [--people 40]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from daemon import budget  # noqa: E402
from daemon.settlement import settlement_document  # noqa: E402
from hub import ledger  # noqa: E402
from hub import tokens as hub_tokens  # noqa: E402
from hub.db import migrate, open_database  # noqa: E402
from hub.ledger import Provider, Tokens  # noqa: E402
from hub.proofs import ProofFetcher  # noqa: E402
from hub.provider import SimulatedProvider  # noqa: E402
from hub.schema import accounts, settlements  # noqa: E402
from hub.service import Hub  # noqa: E402
from mecene import ohttp, tokens, tokenwire  # noqa: E402
from mecene.encoding import b64u, canonical  # noqa: E402
from mecene.time import FrozenClock  # noqa: E402
from tests.support.hubs import PG_SERVER, Person  # noqa: E402

MONTH = "2026-10"
CONCURRENCY = 16


def raw_rsa(seconds: float = 2.0) -> tuple[float, float]:
    """RSA-2048 RSASSA-PSS SHA-384 signatures and verifications per second."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    message = b"x" * 98
    rates = []
    for op in ("sign", "verify"):
        sig = key.sign(message, pss, hashes.SHA384())
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(50):
                if op == "sign":
                    key.sign(message, pss, hashes.SHA384())
                else:
                    key.public_key().verify(sig, message, pss, hashes.SHA384())
            count += 50
        rates.append(count / (time.perf_counter() - start))
    return rates[0], rates[1]


def a_month(rng: random.Random) -> budget.Split:
    """One person's month: 50 flattrs of things over 20 creators, a 5 € budget."""
    creators = [f"domain:site{rng.randrange(5000)}.example" for _ in range(20)]
    clicks = []
    for n in range(50):
        creator = rng.choice(creators)
        host = creator.split(":", 1)[1]
        clicks.append(
            budget.ClickWeight(
                id=f"c{n:02d}",
                at=f"2026-10-{1 + n % 28:02d}T12:00:00.000000Z",
                creator=creator,
                url=f"https://{host}/2026/10/a-post-about-something-{n}",
                weight=1,
            )
        )
    return budget.split_budget(budget.BudgetRules(budget_cents=500), clicks, 10_000)


def shares_of(split: budget.Split, rng: random.Random) -> list[tuple[str, int]]:
    """The month's shares as tokens of the one value (as the daemon plans
    them: whole tokens, randomised rounding), each (creator, cents)."""
    exact = [(a.creator, a.cents) for a in budget.by_creator(split.allocations)]
    counts = tokens.apportion(exact, tokens.whole(split.spend_cents), rng.randrange)
    return [(creator, n * tokens.DENOMINATION) for creator, n in counts.items()]


async def hub_rates(people: int) -> tuple[float, float, int]:
    name = f"mecene_tokens_{random.getrandbits(40):010x}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = open_database(f"{PG_SERVER}/{name}")
    clock = FrozenClock(dt.datetime(2026, 11, 5, 12, 0, tzinfo=dt.UTC))
    hub = Hub(engine, Ed25519PrivateKey.generate(), clock, SimulatedProvider(), ProofFetcher())
    try:
        await migrate(engine)
        keys = {k.denomination_cents: k.public for k in await hub.tokens.keys_of(MONTH)}
        rng = random.Random(17)
        months = [shares_of(a_month(rng), rng) for _ in range(people)]
        # Each person's unlinkable settlement, straight into the tables: what
        # is measured is the tokens.
        givers = [Person.new() for _ in months]
        async with engine.begin() as conn:
            for person, shares in zip(givers, months, strict=True):
                spend = sum(c for _k, c in shares)
                doc = canonical(
                    {
                        "v": 1,
                        "account": person.account,
                        "month": MONTH,
                        "currency": "EUR",
                        "spend_cents": spend,
                        "private": True,
                        "allocations": [],
                        "unlinkable": True,
                    }
                ).decode()
                await conn.execute(accounts.insert().values(id=person.account, created_at=0))
                await conn.execute(
                    settlements.insert().values(
                        account=person.account,
                        month=MONTH,
                        document=doc,
                        signature="-",
                        sha256="-",
                        spend_cents=spend,
                        unlinkable=True,
                        receipt="-",
                        receipt_signature="-",
                        received_at=0,
                    )
                )
                await ledger.post(
                    conn,
                    "seed",
                    person.account,
                    {Provider("bench"): -spend, Tokens(MONTH): spend},
                    0,
                )
        requests, pending = [], []
        for person, shares in zip(givers, months, strict=True):
            mine = [
                (c, tokens.begin(keys[tokens.DENOMINATION]))
                for c, cents in shares
                for _ in range(cents // tokens.DENOMINATION)
            ]
            body = tokenwire.build_issue(MONTH, [p for _c, p in mine])
            requests.append((person.account, hub_tokens.issue_request(body)))
            pending.append(mine)
        start = time.perf_counter()
        answers = []
        for account, req in requests:
            _created, out = await hub.tokens.issue(account, req)
            answers.append(out)
        issue_took = time.perf_counter() - start
        count = sum(len(m) for m in pending)

        redeem = []
        for mine, out in zip(pending, answers, strict=True):
            sigs = tokenwire.parse_issue_answer(out, len(mine)).blind_signatures
            for (creator, p), sig in zip(mine, sigs, strict=True):
                token = p.finish(keys[tokens.DENOMINATION], sig)
                body = tokenwire.build_redemption(tokenwire.Redemption(token, p.prefix, creator))
                redeem.append(hub_tokens.redeem_request(body))
        random.shuffle(redeem)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for r in redeem:
            queue.put_nowait(r)

        async def worker() -> None:
            while not queue.empty():
                await hub.tokens.redeem(queue.get_nowait())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        redeem_took = time.perf_counter() - start
        await hub.run_payouts()
        books = await hub.books()
        assert not any(books.values()), books
        assert await hub.balance_of(Tokens(MONTH)) == 0
        return count / issue_took, count / redeem_took, count
    finally:
        await hub.fetcher.close()
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def month_bytes() -> None:
    """A month of 50 flattrs: bytes and requests, unlinkable against plain."""
    split = a_month(random.Random(5))
    mine = shares_of(split, random.Random(5))
    total = sum(c for _k, c in mine)
    person = Person.new()
    hub_key = Ed25519PrivateKey.generate()
    plain = settlement_document(
        person.account, MONTH, split.spend_cents, split.allocations, private=False
    )
    text, sig = plain.sign(person.sign)
    plain_sent = len(json.dumps({"document": text, "signature": sig}))
    # The receipt the hub answers with (the same for both), and its signature.
    receipt_text = canonical(
        {
            "v": 2,
            "hub": person.account,
            "account": person.account,
            "month": MONTH,
            "sha256": "0" * 64,
            "spend_cents": total,
            "received_at": 1793000000,
        }
    )
    receipt = len(
        json.dumps({"receipt": receipt_text.decode(), "signature": b64u(hub_key.sign(b"-"))})
    )
    unlinkable = settlement_document(
        person.account, MONTH, total, [], private=True, unlinkable=True
    )
    utext, usig = unlinkable.sign(person.sign)
    settle = len(json.dumps({"document": utext, "signature": usig}))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    hub_public = b64u(hub_key.public_key().public_bytes_raw())
    directory = tokenwire.sign_directory(
        tokenwire.build_directory(
            tokenwire.KeyDirectory(
                MONTH,
                "2027-11-01T00:00:00.000000Z",
                (
                    tokenwire.DirectoryKey(
                        tokens.key_id(key.public_key()), tokens.DENOMINATION, key.public_key()
                    ),
                ),
            ),
            hub_public,
        ),
        hub_key.sign,
    )
    keys_answer = len(json.dumps(directory))
    count = total // tokens.DENOMINATION
    pending = tokens.begin(key.public_key())
    issue_body = len(
        json.dumps(
            {
                "month": MONTH,
                "tokens": [{"key": "0" * 64, "request": b64u(pending.request())}] * count,
            }
        )
    )
    issue_receipt, issue_signature = tokenwire.IssueReceipt(
        hub_public, person.account, f"month:{MONTH}", MONTH, "0" * 64, count, "0" * 64
    ).sign(hub_key.sign)
    issue_answer = len(
        json.dumps(
            {
                "month": MONTH,
                "blind_signatures": [b64u(b"x" * 256)] * count,
                "receipt": issue_receipt,
                "signature": issue_signature,
            }
        )
    )
    token = tokens.Token(pending.nonce, pending.key_id, b"x" * 256)
    redeem_body = len(
        json.dumps(
            {
                "token": b64u(token.serialise()),
                "prefix": b64u(pending.prefix),
                "creator": mine[0][0],
            }
        )
    )
    redeem_answer = len(json.dumps({"month": MONTH, "cents": 10, "creator": mine[0][0]}))
    plain_total = plain_sent + receipt
    # A month's directory is fetched twice: pinned, then seen again before the
    # first redemption (key consistency).
    unlinkable_total = (
        settle
        + receipt
        + 2 * keys_answer
        + issue_body
        + issue_answer
        + count * (redeem_body + redeem_answer)
    )
    # Through a relay: each redemption and directory fetch, encapsulated
    # (mecene/ohttp.py), and the gateway's key once.
    gateway = ohttp.Gateway.derived(b"bench" * 8)
    gateway_keys = len(
        json.dumps(tokenwire.build_gateway_keys(gateway.config.encode(), hub_public, hub_key.sign))
    )

    def relayed(method: str, path: str, body: bytes, answer: bytes) -> int:
        headers = (("content-type", "application/json"),) if body else ()
        inner = ohttp.Request(method, "https", "hub.example", path, headers, body).encode()
        sealed, _context = ohttp.encapsulate_request(gateway.config, inner)
        _request, sealer = gateway.decapsulate(sealed)
        out = ohttp.Response(200, (("content-type", "application/json"),), answer).encode()
        return len(sealed) + len(sealer.seal(out))

    one = b"x"
    relay_total = (
        settle
        + receipt
        + gateway_keys
        + 2 * relayed("GET", f"/v1/token-keys/{MONTH}", b"", one * keys_answer)
        + issue_body
        + issue_answer
        + count * relayed("POST", "/v1/tokens/redeem", one * redeem_body, one * redeem_answer)
    )
    print(
        f"a month of 50 flattrs over {len(mine)} creators ({total} cents, {count} tokens), "
        "JSON bodies sent and received:"
    )
    print(f"  plain settlement          1 request   {plain_total:7,} bytes (baseline)")
    print(
        f"  unlinkable                {4 + count} requests {unlinkable_total:7,} bytes "
        f"= {unlinkable_total / plain_total:.1f}x: the settlement {settle + receipt:,}, "
        f"the month's keys 2 x {keys_answer:,} (pinned, then seen again), issuance "
        f"{issue_body + issue_answer:,}, {count} redemptions of {redeem_body + redeem_answer:,} "
        "(each on a connection of its own: add a TCP and TLS handshake each)"
    )
    print(
        f"  unlinkable, relayed       {5 + count} requests {relay_total:7,} bytes "
        f"= {relay_total / plain_total:.1f}x: the same, the key fetches and redemptions "
        f"encapsulated (Oblivious HTTP), and the gateway's key {gateway_keys:,} once"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=40, help="months issued and redeemed")
    args = parser.parse_args()
    month_bytes()
    sign, verify = raw_rsa()
    print(
        f"raw RSA-2048 on one core (baseline): {sign:,.0f} signatures/s, "
        f"{verify:,.0f} verifications/s"
    )
    issue, redeem, count = asyncio.run(hub_rates(args.people))
    print(
        f"hub, PostgreSQL, one process: {count:,} tokens; issuance {issue:,.0f} tokens/s "
        f"= {issue / sign:.2f} of raw signing; redemption {redeem:,.0f} tokens/s "
        f"= {redeem / verify:.3f} of raw verification"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
