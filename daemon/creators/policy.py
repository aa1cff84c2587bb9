"""Who has joined, and whose keys are the person's own (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mecene import messages, tokenwire

from ..errors import FlattrOwner


@dataclass(frozen=True)
class Joined:
    """The creators who have joined the hub, as of `at`."""

    keys: frozenset[str]
    escrow_months: int
    at: dt.datetime
    nonprofit: frozenset[str] = frozenset()  # keys whose owner pays no fee


class MalformedList(ValueError):
    """The hub's list of joined creators is not what the protocol says."""


def parse_joined(data: Any, at: dt.datetime) -> Joined:
    """GET /v1/creators/joined's answer (mecene/messages.py), checked; MalformedList if not."""
    try:
        listed = messages.parse_joined(data)
    except tokenwire.WireError as exc:
        raise MalformedList(str(exc)) from None
    return Joined(frozenset(listed.keys), listed.escrow_months, at, frozenset(listed.nonprofit))


def not_own(own_creators: Iterable[str], creator: str) -> None:
    """A flattr, subscription or gift to one of the person's own keys is refused."""
    if creator in own_creators:
        raise FlattrOwner("that is one of your own creator keys")
