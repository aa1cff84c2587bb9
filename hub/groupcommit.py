"""Requests that arrive at the same moment written in one transaction (a
group commit), as the daemon's store does for clicks.

Each request's handler checks what it can alone (signatures, shapes), then
hands its item to a `GroupCommit` and waits. The worker takes every item
waiting, up to `max_batch`, and calls `write(conn, batch)` in one
transaction: one statement per kind of row, not one per request, and one
commit. `write` answers each item in order: `(created, answer)` or a
`HubError` that refuses that item alone. An answer is given only after the
commit.

Two items with the same `key` (the same settlement sent twice at once, one
token redeemed twice at once) never share a batch: the second waits for the
next one, where it meets the first as already written. If the commit itself
fails (another process wrote the same row at the same moment, a deadlock),
each item of the batch is written again on its own, a few times, and then
the race is seen as a repeat. A client that goes away does not take its item
out of the batch: it is written (or refused) all the same, and sent again it
gets the same answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mecene.diskspace import disk_is_full

from .errors import HubError

log = logging.getLogger("mecene.hub")

MAX_BATCH = 256

T = TypeVar("T")
Answer = tuple[bool, dict[str, Any]]
Outcome = Answer | HubError


@dataclass
class _Waiting(Generic[T]):
    item: T
    future: asyncio.Future[Answer]


class GroupCommit(Generic[T]):
    """One process's group commit of one kind of request."""

    def __init__(
        self,
        engine: AsyncEngine,
        write: Callable[[AsyncConnection, Sequence[T]], Awaitable[list[Outcome]]],
        key: Callable[[T], Hashable],
        *,
        what: str,
        on_created: Callable[[], None] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.engine = engine
        self.write = write
        self.key = key
        self.what = what  # "settlements", "redemptions": for the log
        self.on_created = on_created
        self.max_batch = max_batch
        self._waiting: list[_Waiting[T]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> Answer:
        """(created, answer), once committed; or the item's HubError."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = (
                self._waiting[: self.max_batch],
                self._waiting[self.max_batch :],
            )
            try:
                await self._commit(batch)
            except Exception as exc:  # every waiting request hears of it
                if disk_is_full(exc):  # an accident of the machine: answered 507
                    log.warning("writing a batch of %s: the disk is full", self.what)
                else:  # a bug
                    log.exception("writing a batch of %s failed", self.what)
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(exc)

    async def _commit(self, batch: list[_Waiting[T]]) -> None:
        seen: set[Hashable] = set()
        now_batch: list[_Waiting[T]] = []
        later: list[_Waiting[T]] = []
        for w in batch:
            key = self.key(w.item)
            (later if key in seen else now_batch).append(w)
            seen.add(key)
        self._waiting[:0] = later
        items = [w.item for w in now_batch]
        try:
            outcomes = await self._run(items)
        except DBAPIError as exc:
            if len(now_batch) > 1:
                log.info("a batch of %d %s is tried one by one: %s", len(items), self.what, exc)
            outcomes = [await self._alone(item, exc) for item in items]
        created = 0
        for w, outcome in zip(now_batch, outcomes, strict=True):
            if w.future.done():
                continue
            if isinstance(outcome, HubError):
                w.future.set_exception(outcome)
            else:
                created += outcome[0]
                w.future.set_result(outcome)
        if created and self.on_created is not None:
            self.on_created()

    async def _alone(self, item: T, first: DBAPIError) -> Outcome:
        """One item in its own transaction, a few times: the race that failed
        a batch (a concurrent copy of it) is then seen as a repeat."""
        error: DBAPIError = first
        for attempt in range(5):
            try:
                (outcome,) = await self._run([item])
                return outcome
            except DBAPIError as exc:
                error = exc
                await asyncio.sleep(0.01 * (attempt + 1) * random.random())
        raise error

    async def _run(self, items: Sequence[T]) -> list[Outcome]:
        async with self.engine.begin() as conn:
            return await self.write(conn, items)
