"""Waiting on an event for at most a while, in a loop that is cancelled when
its process stops.

Not `asyncio.wait_for(event.wait(), timeout)`: on Python 3.11 it swallows a
cancellation that arrives as the event is set (CPython gh-86296, fixed in
3.12), and a loop that swallowed its cancellation keeps the daemon from
stopping. `asyncio.timeout` does not."""

from __future__ import annotations

import asyncio


async def wait_at_most(event: asyncio.Event, seconds: float) -> bool:
    """Until `event` is set (True) or `seconds` have passed (False)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
