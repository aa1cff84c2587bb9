"""Who has joined, and whose keys are the person's own (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import FlattrOwner

MAX_JOINED_KEYS = 5_000_000


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
    """GET /v1/creators/joined's answer, checked; MalformedList if not."""
    keys = data.get("keys") if isinstance(data, dict) else None
    months = data.get("escrow_months") if isinstance(data, dict) else None
    nonprofit = data.get("nonprofit", []) if isinstance(data, dict) else None
    if (
        not isinstance(keys, list)
        or len(keys) > MAX_JOINED_KEYS
        or not all(isinstance(k, str) for k in keys)
        or not isinstance(months, int)
        or not isinstance(nonprofit, list)
        or not all(isinstance(k, str) for k in nonprofit)
    ):
        raise MalformedList("the hub's list of joined creators is malformed")
    return Joined(frozenset(keys), months, at, frozenset(nonprofit) & set(keys))


def not_own(own_creators: Iterable[str], creator: str) -> None:
    """A flattr, subscription or gift to one of the person's own keys is refused."""
    if creator in own_creators:
        raise FlattrOwner("that is one of your own creator keys")
