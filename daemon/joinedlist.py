"""Who has joined (DESIGN.md, "Who has joined"): the hub's whole list of
proved creator keys, downloaded by the daemon so that the popup can say
whether a creator has joined without the hub learning which creator the
person looked at.

Asked every few minutes (a creator who just joined is seen within them) and
at once after the person's own claim or Flattr ID, with the ETag of the list
held: unchanged, most times, the hub answers 304 with no body. The ETag is
the list's digest, the same for every daemon: it names the list, not the
person. From the person's own address, like a signed call, so it keeps
apart from redemptions as one (daemon/unlinkable/spacing.py); and in a loop
of its own, not in the signed pass, whose random schedule it would set."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
from typing import TYPE_CHECKING

from mecene.waiting import wait_at_most

from . import sendpolicy as policy
from .creators.policy import MalformedList, parse_joined
from .errors import DomainError, HubRefused

if TYPE_CHECKING:
    from .hublink import HubLink

log = logging.getLogger("mecene.hub")
# How often the list is asked for again (tests shorten it).
JOINED_REFRESH_SECONDS = float(os.environ.get("MECENE_JOINED_REFRESH_SECONDS", "300"))


class JoinedList:
    def __init__(self, link: HubLink) -> None:
        self.link = link
        self.wake = asyncio.Event()  # the list, now
        self.etag: str | None = None  # the ETag of the list held

    async def refresh(self) -> None:
        link = self.link
        creators = link.service.creators
        known = creators.joined
        asked = {"If-None-Match": self.etag} if self.etag and known else {}
        answered: dict[str, str] = {}
        while (wait := link.spacing.before_signed_pass()) > 0:
            await asyncio.sleep(wait)
        async with link.spacing.turn:
            link.spacing.signed()
            try:
                status, data = await link.call(
                    "GET",
                    "/v1/creators/joined",
                    signed=False,
                    headers_in=asked,
                    headers_out=answered,
                )
            finally:
                link.spacing.signed()
        if status == 304 and known is not None:
            creators.joined = dataclasses.replace(known, at=link.service.clock.now())
            return
        if status >= 400:
            raise HubRefused(f"the hub refused the list of joined creators ({status})")
        try:
            creators.joined = parse_joined(data, link.service.clock.now())
        except MalformedList as exc:
            raise HubRefused(str(exc)) from None
        self.etag = answered.get("etag")

    async def run(self) -> None:
        """Forever: the list every JOINED_REFRESH_SECONDS, give or take a
        fifth, and at once when woken."""
        while True:
            self.wake.clear()
            try:
                await self.refresh()
                delay = JOINED_REFRESH_SECONDS * (0.8 + secrets.randbelow(400) / 1000)
            except DomainError as exc:
                log.info("the list of joined creators was not downloaded: %s", exc)
                delay = policy.RETRY_MAX_SECONDS / 60
            await wait_at_most(self.wake, delay)
