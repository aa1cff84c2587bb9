"""The protocol package (`mecene/`): what both sides speak, pure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given
from hypothesis import strategies as st

from daemon.budget import BudgetRules, ClickWeight, split_budget
from daemon.settlement import settlement_document
from hub import requests as hub_requests
from hub.errors import HubError
from mecene import signing
from mecene.encoding import b64u, canonical, unb64u
from mecene.settlement import MAX_ALLOCATIONS, Allocation, DocumentError, Receipt, Settlement

ROOT = Path(__file__).resolve().parents[2]


def test_canonical_json_is_rfc_8785_for_the_protocol_s_values() -> None:
    doc = {"v": 1, "b": [True, None, 0, -7], "a": 'é\n\u2028\x1f"\\', "c": {"z": "", "y": 10**15}}
    # Keys sorted, no white space, UTF-8, JCS's escapes (RFC 8785, section 3.2.2.2).
    assert (
        canonical(doc)
        == (
            '{"a":"é\\n\u2028\\u001f\\"\\\\","b":[true,null,0,-7],"c":{"y":1000000000000000,"z":""},'
            '"v":1}'
        ).encode()
    )
    for bad in ({"x": 1.5}, {"é": 1}, [0.1]):
        with pytest.raises(ValueError):
            canonical(bad)


@given(st.binary(max_size=96))
def test_base64url_round_trips_without_padding(raw: bytes) -> None:
    text = b64u(raw)
    assert "=" not in text and unb64u(text) == raw


def test_the_import_contract_holds() -> None:
    """`lint-imports` (pyproject.toml): the daemon and the hub never import
    each other but for the embedded hub; `mecene` imports neither, and no I/O."""
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "Contracts: 5 kept, 0 broken." in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # A policy reaching a database directly, and through another module.
        ("daemon/months/policy.py", "import sqlite3", "policies and the hub's routing do no I/O"),
        ("daemon/budget.py", "from daemon.months import sql", "policies and the hub's routing"),
        ("hub/routing.py", "from . import ledger", "policies and the hub's routing do no I/O"),
        # A room's core talking to the hub itself.
        ("daemon/flattrs/room.py", "from .. import hublink", "reaches the hub only through"),
    ],
)
def test_the_import_contracts_fail_on_a_new_import(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    """The contracts can fail: the same tree with one import added breaks them."""
    for package in ("mecene", "daemon", "hub"):
        shutil.copytree(ROOT / package, tmp_path / package)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    lint = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [str(lint)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 1, out.stdout[-2000:]
    assert "1 broken" in out.stdout and broken in out.stdout.split("BROKEN")[0][-300:], out.stdout


# -- the settlement and the receipt: one type each ------------------------------------

ACCOUNT = "A" * 43
# Creator keys and things' URLs already in their canonical forms.
KEYS = st.sampled_from(
    ["flattr:alice", "domain:example.org", "liberapay:bob", "fediverse:@cy@social.example"]
)
URLS = st.builds("https://example.org/{}/{}".format, st.integers(0, 99), st.text("abc", max_size=5))


@st.composite
def settlements(draw: st.DrawFn) -> Settlement:
    private = draw(st.booleans())
    rows = draw(
        st.lists(
            st.builds(
                Allocation,
                KEYS,
                st.integers(0, 10_000),
                st.none() if private else st.none() | URLS,
            ),
            max_size=8,
        )
    )
    month = f"{draw(st.integers(2000, 2099))}-{draw(st.integers(1, 12)):02d}"
    return Settlement(ACCOUNT, month, sum(a.cents for a in rows), private, tuple(rows))


@given(settlements())
def test_a_settlement_round_trips(doc: Settlement) -> None:
    assert Settlement.parse(doc.serialise().decode()) == doc


@given(
    st.builds(
        Receipt,
        st.just("H" * 43),
        st.just(ACCOUNT),
        st.just("2026-10"),
        st.text("0123456789abcdef", min_size=64, max_size=64),
        st.integers(0, 10**9),
        st.integers(0, 2**40),
    )
)
def test_a_receipt_round_trips(receipt: Receipt) -> None:
    assert Receipt.parse(receipt.serialise().decode()) == receipt


def parse_settlement(text: str) -> Settlement:
    """What the hub's edge makes of a settlement sent with this text."""
    return hub_requests.settlement({"document": text, "signature": "x"}).document


@given(
    st.lists(
        st.tuples(KEYS, URLS, st.integers(1, 5)), min_size=1, max_size=6, unique_by=lambda t: t[1]
    ),
    st.integers(200, 5000),
    st.booleans(),
)
def test_what_the_daemon_builds_the_hub_accepts_and_nothing_else(
    clicks: list[tuple[str, str, int]], budget: int, private: bool
) -> None:
    weights = [
        ClickWeight(f"c{i}", f"2026-10-01T10:00:{i:02d}.000000Z", key, url, weight)
        for i, (key, url, weight) in enumerate(clicks)
    ]
    split = split_budget(BudgetRules(budget_cents=budget), weights, None)
    doc = settlement_document(ACCOUNT, "2026-10", split.spend_cents, split.allocations, private)
    text = doc.serialise().decode()
    parsed = parse_settlement(text)
    assert parsed == doc
    assert (parsed.spend_cents, parsed.private) == (split.spend_cents, private)
    assert sum(a.cents for a in parsed.allocations) == split.spend_cents
    assert all((a.url is None) == private for a in parsed.allocations)
    # Anything else is refused: other bytes of the same values, another sum,
    # a field more, a URL in a private settlement.
    raw = doc.as_json()
    spaced = text.replace(",", ", ", 1)
    more = canonical({**raw, "spend_cents": raw["spend_cents"] + 1}).decode()
    extra = canonical({**raw, "note": "hi"}).decode()
    for bad in (spaced, more, extra, text + " "):
        try:
            parse_settlement(bad)
        except HubError as exc:
            assert exc.code == "invalid"
        else:
            raise AssertionError(f"accepted: {bad[:80]}")
    if private:
        rows = [{**r, "url": "https://example.org/x"} for r in raw["allocations"]]
        assume(rows)
        try:
            parse_settlement(canonical({**raw, "allocations": rows}).decode())
        except HubError:
            pass
        else:
            raise AssertionError("a private settlement with a URL was accepted")


@pytest.mark.parametrize("private", [False, True])
def test_a_month_of_more_things_than_a_settlement_names_still_settles(private: bool) -> None:
    """Found by the month-end kill battery: 10,001 things flattred in a month
    made a document the hub refuses ("at most 10000" allocations), retried
    for ever, the month never settled. Beyond that many, it goes per creator
    (as a private month), and without creators left with no cent."""
    things = MAX_ALLOCATIONS + 1
    weights = [
        ClickWeight(
            f"c{i}",
            f"2026-10-01T10:00:00.{i:06d}Z",
            f"flattr:k{i % 3}",
            f"https://e.example/{i}",
            1,
        )
        for i in range(things)
    ]
    split = split_budget(BudgetRules(budget_cents=500), weights, None)
    doc = settlement_document(ACCOUNT, "2026-10", split.spend_cents, split.allocations, private)
    parsed = parse_settlement(doc.serialise().decode())
    assert parsed.private
    assert [(a.creator, a.url) for a in parsed.allocations] == [
        ("flattr:k0", None),
        ("flattr:k1", None),
        ("flattr:k2", None),
    ]
    assert sum(a.cents for a in parsed.allocations) == 500
    # As many creators as things, most of them with no cent: those are left out.
    many = [
        ClickWeight(
            f"c{i}", f"2026-10-01T10:00:00.{i:06d}Z", f"flattr:k{i}", f"https://e.example/{i}", 1
        )
        for i in range(things)
    ]
    split = split_budget(BudgetRules(budget_cents=500), many, None)
    doc = settlement_document(ACCOUNT, "2026-10", split.spend_cents, split.allocations, private)
    parsed = parse_settlement(doc.serialise().decode())
    assert len(parsed.allocations) == 500 and sum(a.cents for a in parsed.allocations) == 500
    # At the limit, a linkable month still names every thing.
    split = split_budget(BudgetRules(budget_cents=500), weights[:MAX_ALLOCATIONS], None)
    doc = settlement_document(ACCOUNT, "2026-10", split.spend_cents, split.allocations, private)
    assert len(parse_settlement(doc.serialise().decode()).allocations) == (
        3 if private else MAX_ALLOCATIONS
    )


def test_a_document_that_is_not_canonical_says_so() -> None:
    doc = Settlement(ACCOUNT, "2026-10", 5, False, (Allocation("flattr:a", 5),))
    text = doc.serialise().decode()
    try:
        Settlement.parse(text.replace('"v":1', '"v": 1'))
    except DocumentError as exc:
        assert "not canonical JSON" in str(exc)
    else:
        raise AssertionError("accepted")


@given(
    body=st.one_of(
        st.none(), st.dictionaries(st.text(max_size=8), st.integers(), max_size=4), st.binary()
    ),
    method=st.sampled_from(["GET", "POST"]),
)
def test_a_signed_request_is_what_the_hub_checks(body: object, method: str) -> None:
    """The one builder of signed requests (mecene.signing.signed_request):
    its headers pass the hub's check for exactly the bytes it returns, and a
    body says it is JSON."""
    key = Ed25519PrivateKey.generate()
    account = b64u(key.public_key().public_bytes_raw())

    def sign(message: bytes) -> str:
        return b64u(key.sign(message))

    raw, headers = signing.signed_request(account, sign, method, "/v1/x?y=1", body, 1_000_000)
    assert raw == signing.encode_body(body)
    assert ("Content-Type" in headers) == bool(raw)
    who, _nonce, ts = signing.check_request(headers, method, "/v1/x?y=1", raw, 1_000_000)
    assert (who, ts) == (account, 1_000_000)
    with pytest.raises(signing.SignatureError):
        signing.check_request(headers, method, "/v1/x?y=1", raw + b" ", 1_000_000)
