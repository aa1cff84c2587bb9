"""Domain errors: what went wrong, as a stable code and a sentence for a person.

They follow the one convention both services share (mecene/errors.py): the
code maps to an HTTP status there; nothing in the core knows about HTTP.
"""

from __future__ import annotations

from mecene.errors import Refused
from mecene.errors import kind as _kind

DomainError = Refused

Invalid = _kind("invalid", "The request's content breaks a rule (bad URL, weight, month…).")
NotFound = _kind("not_found", "No such click, month, subscription, pairing or browser.")
FlattrOnce = _kind("flattr_once", "This thing was already flattred this month.")
SlowBody = _kind("slow_body", "The request's body did not arrive in time.")
FlattrOwner = _kind("flattr_owner", "The creator is one of the person's own keys.")
IdConflict = _kind("id_conflict", "A client id was reused for a different click.")
ClockBehind = _kind("clock_behind", "The computer's clock reads a month that was already closed.")
SubscriptionOver = _kind("subscription_over", "The subscription was cancelled or has finished.")
MonthClosed = _kind("month_closed", "The click's month is no longer open.")
Locked = _kind("locked", "The wallet is locked: unlock it first.")
InsufficientFunds = _kind(
    "insufficient_funds", "The balance at the hub does not cover it (`balance_cents`)."
)
WrongPassphrase = _kind("wrong_passphrase", "The passphrase did not open the wallet.")
BadJson = _kind("bad_json", "The body is not JSON.")
Unauthorized = _kind("unauthorized", "No valid token, session or login link.")
Revoked = _kind("revoked", "This browser was disconnected by the person: it pairs again.")
PairedAlready = _kind("paired_already", "This browser's key is paired already.")
DiskFull = _kind("disk_full", "The disk is full: nothing was written; reads go on.")


class HubUnreachable(DomainError):
    """The hub could not be reached (the daemon retries)."""

    code = "hub_unreachable"


class HubRefused(DomainError):
    """The hub answered no; its own code is in `hub_error`."""

    code = "hub_refused"
