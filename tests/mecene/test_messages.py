"""The hub's request messages as pairs (mecene/messages.py): what the daemon
builds, the hub parses back to the same values, and what is malformed is
refused with the code the hub answers with."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mecene import messages, money
from mecene.encoding import canonical
from mecene.settlement import Settlement

KEYS = st.sampled_from(["flattr:alice", "domain:example.org", "liberapay:bob"])
IDS = st.uuids().map(str)


@given(method=st.sampled_from(sorted(money.METHODS)), amount=st.integers(200, 100_000))
def test_a_quote_and_a_deposit_parse_back(method: str, amount: int) -> None:
    q = messages.parse_quote(messages.build_quote(method, amount))
    assert (q.method, q.amount_cents, q.fee_cents) == (
        method,
        amount,
        money.deposit_fee_cents(method, amount),
    )
    deposit_id = str(uuid.uuid4())
    d = messages.parse_deposit(messages.build_deposit(deposit_id, method, amount, q.fee_cents))
    assert d == messages.DepositRequest(deposit_id, q)
    with pytest.raises(messages.FeeChanged) as changed:
        messages.parse_deposit(messages.build_deposit(deposit_id, method, amount, q.fee_cents + 1))
    assert changed.value.quote == q and changed.value.code == "invalid"


@given(
    transfer_id=IDS,
    creator=KEYS,
    amount=st.integers(100, 100_000),
    url=st.none() | st.just("https://example.org/a"),
)
def test_a_transfer_parses_back(transfer_id: str, creator: str, amount: int, url: Any) -> None:
    body = messages.build_transfer(transfer_id, creator, amount, url)
    assert messages.parse_transfer(body) == messages.TransferRequest(
        transfer_id, creator, amount, url
    )


@given(withdrawal_id=IDS, amount=st.integers(1000, 10**7))
def test_a_withdrawal_parses_back(withdrawal_id: str, amount: int) -> None:
    out = messages.parse_withdrawal(messages.build_withdrawal(withdrawal_id, amount))
    assert out == messages.WithdrawalRequest(withdrawal_id, amount)


def test_a_settlement_and_a_claim_and_the_joined_list_parse_back() -> None:
    doc = Settlement("A" * 43, "2026-11", 500, True, (), unlinkable=True)
    text = canonical(doc.as_json()).decode()
    req = messages.parse_settlement(messages.build_settlement(text, "SIG"))
    assert (req.text, req.signature, req.document) == (text, "SIG", doc)
    assert messages.parse_claim(messages.build_claim("domain:example.org")) == "domain:example.org"
    listed = messages.JoinedList(("flattr:a", "flattr:b"), ("flattr:b",), 12)
    assert messages.parse_joined(messages.build_joined(listed)) == listed


@pytest.mark.parametrize(
    ("parse", "body", "code", "message"),
    [
        (messages.parse_quote, {"method": [], "amount_cents": 500}, "invalid", "method is one of"),
        (messages.parse_quote, {"method": "card", "amount_cents": 199}, "invalid", "a deposit is"),
        (messages.parse_quote, {"method": "card", "amount_cents": 5.0}, "invalid", "whole number"),
        (
            messages.parse_transfer,
            {"id": "x", "creator": "flattr:a", "cents": 500},
            "invalid",
            "id is",
        ),
        (
            messages.parse_transfer,
            {"id": "x" * 8, "creator": "flattr:a", "cents": 99},
            "invalid",
            "a transfer is 1.00 € to 1000.00 €",
        ),
        (messages.parse_withdrawal, {"id": "x" * 8, "amount_cents": 999}, "invalid", "smallest"),
        (messages.parse_claim, {"key": "flattr:me"}, "not_claimable", "issued by the hub"),
        (messages.parse_claim, {"key": "nope"}, "invalid", "key:"),
        (messages.parse_settlement, {"document": "{}", "signature": 1}, "invalid", "send"),
        (messages.parse_joined, {"keys": "flattr:a", "escrow_months": 12}, "invalid", "malformed"),
        (messages.parse_joined, {"keys": [], "escrow_months": True}, "invalid", "malformed"),
    ],
)
def test_a_malformed_message_is_refused_with_the_hub_s_code(
    parse: Any, body: Any, code: str, message: str
) -> None:
    with pytest.raises(messages.WireError, match=message) as caught:
        parse(body)
    assert caught.value.code == code
