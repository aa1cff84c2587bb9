"""Parsing what arrives in request bodies into checked values (pure).

Every function takes the decoded JSON and returns a typed value or raises
`Invalid` with a sentence a person can act on. JSON numbers must be integers:
a float in a money or weight field is refused, never rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mecene import keys, money
from mecene.time import MONTH_RE

from .budget import MAX_WEIGHT
from .errors import Invalid
from .gifts.policy import in_bounds

MAX_TITLE = 300
MAX_OTHER_CREATORS = 32
SUBSCRIPTION_MONTHS = (3, 6, 12)
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class ClickRequest:
    id: str
    url: str
    creator: str
    title: str | None = None
    creators: tuple[str, ...] = ()
    weight: int = 1


@dataclass(frozen=True)
class SubscriptionRequest:
    id: str | None
    url: str | None
    creator: str
    title: str | None
    months: int
    weight: int | None = None  # None: the thing's weight this month, else 1


@dataclass(frozen=True)
class SubscriptionChange:
    weight: int | None
    extend: int | None


@dataclass(frozen=True)
class TransferRequest:
    id: str
    creator: str
    cents: int
    url: str | None = None
    title: str | None = None
    note: str | None = None


MAX_NOTE = 200


def transfer(body: Any) -> TransferRequest:
    """A direct transfer: {id, creator, cents, url?, title?, note?}. The amount's
    bounds are the hub's (mecene/money.py), checked here so a wrong amount is
    refused before anything is recorded."""
    b = obj(body, {"id", "creator", "cents", "url", "title", "note"})
    thing = b.get("url")
    note = b.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise Invalid(f"note is a text of at most {MAX_NOTE} characters")
    return TransferRequest(
        id=client_id(b.get("id")),
        creator=creator(b.get("creator")),
        cents=transfer_cents(b.get("cents")),
        url=None if thing is None else url(thing),
        title=title(b.get("title")),
        note=(note or "").strip() or None,
    )


def obj(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)[:200]}")
    return body


def integer(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{name} must be a whole number")
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}")
    return value


def version(raw: str | None) -> int:
    """A version number in a query (`?since=12`): a whole number, 0 when absent."""
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
        raise Invalid("since is a whole number (the version last seen)")
    return int(raw)


def client_id(value: Any, name: str = "id") -> str:
    if not isinstance(value, str) or not _UUID_RE.match(value.lower()):
        raise Invalid(f"{name} must be a UUID made by the client")
    return value.lower()  # the pattern admits only the canonical 8-4-4-4-12 form


def month(value: Any) -> str:
    if not isinstance(value, str) or not MONTH_RE.match(value):
        raise Invalid("a month is written YYYY-MM")
    return value


def title(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("title must be text")
    text = " ".join(value.split())
    return text[:MAX_TITLE] or None


def creator(value: Any, name: str = "creator") -> str:
    """A creator key in its canonical form; a person may type any readable
    form the screens show (mecene/keys.py, `typed_key`)."""
    try:
        return keys.typed_key(value)
    except ValueError as exc:
        raise Invalid(f"{name}: {exc}") from None


MAX_QUERIED_KEYS = 64


def creator_keys_query(values: list[str]) -> list[str]:
    """`?key=A&key=B`: 1 to 64 creator keys, each in its canonical form."""
    if not values or len(values) > MAX_QUERIED_KEYS:
        raise Invalid(f"ask about 1 to {MAX_QUERIED_KEYS} creator keys (?key=…)")
    return [creator(v, "key") for v in values]


def url(value: Any, name: str = "url") -> str:
    try:
        return keys.thing_url(value)
    except ValueError as exc:
        raise Invalid(f"{name}: {exc}") from None


def click(body: Any) -> ClickRequest:
    b = obj(body, {"id", "url", "title", "creator", "creators", "weight"})
    for field in ("id", "url", "creator"):
        if field not in b:
            raise Invalid(f"{field} is required")
    others: list[str] = []
    raw_others = b.get("creators", [])
    if not isinstance(raw_others, list) or len(raw_others) > MAX_OTHER_CREATORS:
        raise Invalid(f"creators must be a list of at most {MAX_OTHER_CREATORS} creator keys")
    for item in raw_others:
        key = creator(item, "creators")
        if key not in others:
            others.append(key)
    return ClickRequest(
        id=client_id(b["id"]),
        url=url(b["url"]),
        creator=creator(b["creator"]),
        title=title(b.get("title")),
        creators=tuple(others),
        weight=integer(b.get("weight", 1), "weight", 1, MAX_WEIGHT),
    )


def subscription(body: Any) -> SubscriptionRequest:
    b = obj(body, {"id", "url", "creator", "title", "months", "weight"})
    if "creator" not in b or "months" not in b:
        raise Invalid("creator and months are required")
    months = b["months"]
    if not isinstance(months, int) or isinstance(months, bool) or months not in SUBSCRIPTION_MONTHS:
        raise Invalid("months must be 3, 6 or 12")
    return SubscriptionRequest(
        id=client_id(b["id"]) if b.get("id") is not None else None,
        url=url(b["url"]) if b.get("url") is not None else None,
        creator=creator(b["creator"]),
        title=title(b.get("title")),
        months=months,
        weight=None if b.get("weight") is None else integer(b["weight"], "weight", 1, MAX_WEIGHT),
    )


def subscription_change(body: Any) -> SubscriptionChange:
    """{weight?: 1..5, extend?: 3 | 6 | 12}: at least one."""
    b = obj(body, {"weight", "extend"})
    if b.get("weight") is None and b.get("extend") is None:
        raise Invalid("say a new weight, or extend by 3, 6 or 12 months")
    extend = b.get("extend")
    if extend is not None and (
        not isinstance(extend, int) or isinstance(extend, bool) or extend not in SUBSCRIPTION_MONTHS
    ):
        raise Invalid("extend must be 3, 6 or 12")
    weight = b.get("weight")
    return SubscriptionChange(
        weight=None if weight is None else integer(weight, "weight", 1, MAX_WEIGHT),
        extend=extend,
    )


def cents(value: Any, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    return integer(value, name, 0, money.MAX_SETTING_CENTS)


def transfer_cents(value: Any) -> int:
    """A direct transfer's amount, within the money rules' bounds."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid("cents must be a whole number")
    return in_bounds(value)


def settings_patch(body: Any) -> dict[str, Any]:
    """The settings a PATCH may change, checked one by one (the whole is checked later)."""
    b = obj(
        body,
        {
            "budget_cents",
            "min_click_cents",
            "cap_cents",
            "charity",
            "private",
            "time_zone",
            "own_creators",
            "subscriptions_paused",
            "unlinkable",
            "browser_gift_limit_cents",
            "backup_dir",
            "backup_keep",
        },
    )
    out: dict[str, Any] = {}
    if "budget_cents" in b:
        out["budget_cents"] = cents(b["budget_cents"], "budget_cents")
    if "browser_gift_limit_cents" in b:
        out["browser_gift_limit_cents"] = cents(
            b["browser_gift_limit_cents"], "browser_gift_limit_cents"
        )
    for name in ("min_click_cents", "cap_cents"):
        if name in b:
            out[name] = cents(b[name], name, optional=True)
    if "charity" in b:
        out["charity"] = None if b["charity"] is None else creator(b["charity"], "charity")
    for flag in ("private", "subscriptions_paused", "unlinkable"):
        if flag in b:
            if not isinstance(b[flag], bool):
                raise Invalid(f"{flag} must be true or false")
            out[flag] = b[flag]
    if "time_zone" in b:
        if not isinstance(b["time_zone"], str) or len(b["time_zone"]) > 64:
            raise Invalid("time_zone must be an IANA zone name such as Europe/Paris")
        out["time_zone"] = b["time_zone"]
    if "backup_dir" in b:
        folder = b["backup_dir"]
        if folder is not None and (
            not isinstance(folder, str) or not keys.is_text(folder) or len(folder) > 1024
        ):
            raise Invalid("backup_dir must be a folder's full path, or null for no backups")
        out["backup_dir"] = folder
    if "backup_keep" in b:
        keep = b["backup_keep"]
        if not isinstance(keep, int) or isinstance(keep, bool):
            raise Invalid("backup_keep must be a whole number")
        out["backup_keep"] = keep
    if "own_creators" in b:
        raw = b["own_creators"]
        if not isinstance(raw, list) or len(raw) > 64:
            raise Invalid("own_creators must be a list of at most 64 creator keys")
        out["own_creators"] = tuple(creator(k, "own_creators") for k in raw)
    return out


DEPOSIT_METHODS = money.METHODS


def deposit(body: dict[str, Any]) -> tuple[str, int]:
    """(method, amount_cents) of a deposit request; the hub checks its limits."""
    method = body.get("method")
    if not isinstance(method, str) or method not in DEPOSIT_METHODS:
        raise Invalid(f"method is one of {', '.join(DEPOSIT_METHODS)}")
    amount = body.get("amount_cents")
    # Any sane amount passes here; the hub answers with its own bounds
    # (mecene.money.deposit_cents), which the person then reads.
    if (
        not isinstance(amount, int)
        or isinstance(amount, bool)
        or not 1 <= amount <= money.MAX_SETTING_CENTS
    ):
        raise Invalid("amount_cents is a whole number of cents")
    return method, amount
