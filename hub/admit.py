"""The rules that admit money coming into the hub, written once: a month's
settlement (hub/accept.py), a direct transfer (hub/gifts.py with
hub/admission.py) and a transfer paid as tokens (hub/tokens.py).

Each path reads what the rules need under its own locks (a batch of
settlements in one group commit, a transfer in its own transaction) and asks
`refusal`; what admitted money then does to "gave this month" is `gives`.
Pure, without a database: tests/hub/test_admit.py runs them as a table of
cases, as tests/hub/test_routing.py does for where the money goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from mecene import money
from mecene.amounts import euros
from mecene.time import month_ended_everywhere

from .errors import HubError


class Kind(StrEnum):
    SETTLEMENT = "settlement"  # a month's split, sent once the month is over
    TRANSFER = "transfer"  # a one-off amount to one creator, at once
    TRANSFER_TOKENS = "transfer_tokens"  # the same, paid as tokens (unlinkable)


def refusal(
    kind: Kind,
    *,
    month: str,
    spend_cents: int,
    balance_cents: int,
    creators: Iterable[str] = (),
    own_keys: Iterable[str] = (),
    account_created: int | None = None,
) -> HubError | None:
    """Why the hub refuses `spend_cents` from an account in `month`, or None.
    In this order, each the first a person can act on:

    - a month that had ended everywhere before the account existed
      (`account_created`, Unix seconds; settlements only: an account is not
      made to pay for months it never lived);
    - money to the giver's own creator keys (`own_keys` among `creators`);
    - more than the account's balance.
    """
    if (
        kind is Kind.SETTLEMENT
        and account_created is not None
        and account_created >= month_ended_everywhere(month).timestamp()
    ):
        return HubError("month_before_account", f"{month} had ended before this account existed")
    refused = own_key(creators, own_keys)
    if refused is not None:
        return refused
    if balance_cents < spend_cents:
        return insufficient(kind, spend_cents=spend_cents, balance_cents=balance_cents)
    return None


def own_key(creators: Iterable[str], own_keys: Iterable[str]) -> HubError | None:
    """Money to the giver's own creator keys (`own_keys` among `creators`):
    refused, naming them, so the daemon splits the month again without them."""
    mine = sorted(set(own_keys) & set(creators))
    if not mine:
        return None
    return HubError(
        "own_key",
        "a payment cannot go to the giver's own creator keys: " + ", ".join(mine),
        keys=mine,
    )


def insufficient(kind: Kind, *, spend_cents: int, balance_cents: int) -> HubError:
    """More than the balance: what to do about it, said for the kind of money."""
    if kind is Kind.SETTLEMENT:
        said = (
            f"the balance is {euros(balance_cents)}, the settlement spends "
            f"{euros(spend_cents)}: deposit, and the daemon will send it again"
        )
    else:
        said = f"the balance is {euros(balance_cents)}, less than the {euros(spend_cents)} to give"
    return HubError("insufficient_funds", said, balance_cents=balance_cents)


def gives(spend_cents: int) -> bool:
    """Whether admitted money makes its giver one who gave that month ("to
    receive, you must give"; and only such givers count in the counters):
    at least the least a month gives, whatever the kind."""
    return bool(gives_sql(spend_cents))


def gives_sql(spend_cents: Any) -> Any:
    """`gives` as a condition on a column of cents (hub/counting.py), or on
    cents themselves: the rule, written once."""
    return spend_cents >= money.MIN_GIVING_CENTS
