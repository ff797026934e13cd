"""The revocation stream: every session revocation, for app backends that verify access tokens themselves.

One feed per process. It reads the sessions revoked since its last look, when the revocation path tells it of
one (``RevocationCache.listeners``: a revocation made here, or one the Redis bus brought from another process)
and at least every half second otherwise (another process, or another machine, without Redis), and hands each
entry to every subscriber. An entry is moot once the last access token of its session has expired (``until``).

Each subscriber has a bounded queue: one that does not read is dropped, and resumes with ``Last-Event-ID``.

A snapshot (what a new subscriber gets first) is one query shared by every subscriber that subscribed before it
began: a thousand app backends reconnecting at once cost the database a few queries, not a thousand.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Record
from sessionward.sessions import store as sessions_store
from sessionward.tokens.jwt import LEEWAY_SECONDS

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# A revocation whose transaction committed later than it was stamped (or on a machine whose clock is behind)
# is still seen: each look goes back this far, and entries already handed out are not handed out again.
OVERLAP = timedelta(seconds=10)
QUEUE_SIZE = 1000
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    session_id: str
    user_id: int
    revoked_at: datetime
    until: datetime

    @property
    def cursor(self) -> str:
        """The event id: the instant in microseconds and the session, in the order entries are read."""
        return f"{int(self.revoked_at.timestamp() * 1_000_000)}-{self.session_id}"

    def data(self) -> dict[str, Any]:
        return {
            "sid": self.session_id,
            "sub": str(self.user_id),
            "revoked_at": iso(self.revoked_at),
            "until": iso(self.until),
        }


def parse_cursor(value: str | None) -> datetime | None:
    """The instant of a ``Last-Event-ID``; ``None`` for none or one that is not ours (a full snapshot then)."""
    micros, _, session_id = (value or "").partition("-")
    if not micros.isdigit() or len(session_id) != 64:
        return None
    try:
        return datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
    except (OverflowError, ValueError, OSError):
        return None


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    def offer(self, entry: Entry) -> bool:
        """False once the queue is full: the subscriber is dropped, and resumes from its last id."""
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped = True
        return not self.dropped


class RevocationFeed:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[str, datetime] = {}
        self._looked_at: datetime | None = None
        self._next_snapshot: asyncio.Future[list[Entry]] | None = None  # not begun yet: joiners welcome
        self._snapshots = asyncio.Lock()
        self._reads: set[asyncio.Task[None]] = set()  # held here: the event loop keeps only weak references
        ctx.cache.listeners.append(self._wake.set)

    def _moot_before(self) -> datetime:
        return self.ctx.clock.now() - self.ctx.settings.access_token_expires_in - timedelta(seconds=LEEWAY_SECONDS)

    def _entry(self, row: Record) -> Entry:
        lifetime = self.ctx.settings.access_token_expires_in + timedelta(seconds=LEEWAY_SECONDS)
        return Entry(row.id, row.user_id, row.revoked_at, row.revoked_at + lifetime)

    async def snapshot(self, after: datetime | None) -> list[Entry]:
        """The entries not yet moot; resuming (``after``, a ``Last-Event-ID``), those of them since then. Call it
        after ``subscribe``: it reads the database later than that, so nothing revoked meanwhile is missed."""
        if self._next_snapshot is None:
            self._next_snapshot = asyncio.get_running_loop().create_future()
            read = asyncio.create_task(self._read_snapshot(self._next_snapshot))
            self._reads.add(read)
            read.add_done_callback(self._reads.discard)
        entries = await asyncio.shield(self._next_snapshot)
        if after is None:
            return entries
        return [entry for entry in entries if entry.revoked_at >= after - OVERLAP]

    async def _read_snapshot(self, result: asyncio.Future[list[Entry]]) -> None:
        async with self._snapshots:  # one at a time; those who come meanwhile wait for the next
            self._next_snapshot = None  # from here on, a new subscriber needs a later read
            try:
                rows = await self._revoked_since(self._moot_before())
            except Exception as exc:  # noqa: BLE001 - handed to every subscriber waiting for it
                result.set_exception(exc)
            else:
                result.set_result([self._entry(row) for row in rows])

    async def _revoked_since(self, since: datetime) -> list[Record]:
        """Every session revoked since ``since``, read a batch at a time."""
        rows: list[Record] = []
        last_id = ""
        while True:
            async with self.ctx.db.read() as conn:
                batch = await sessions_store.revoked_since(conn, since=since, after=last_id, limit=_BATCH)
            rows.extend(batch)
            if len(batch) < _BATCH:
                return rows
            since, last_id = batch[-1].revoked_at, batch[-1].id

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self.subscribers.add(subscription)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="revocation feed")
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)

    async def _run(self) -> None:
        while self.subscribers:
            try:
                await self._look()
            except Exception as exc:  # noqa: BLE001 - the database is down: look again; subscribers keep waiting
                log.warning("revocation feed look failed", extra={"exc_type": type(exc).__name__})
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        self._task = None

    async def _look(self) -> None:
        now = self.ctx.clock.now()
        since = (self._looked_at or now) - OVERLAP
        rows = await self._revoked_since(since)
        self._looked_at = now
        fresh = [self._entry(row) for row in rows if row.id not in self._seen]
        for entry in fresh:
            self._seen[entry.session_id] = entry.revoked_at
            for subscription in list(self.subscribers):
                if not subscription.offer(entry):
                    self.unsubscribe(subscription)
        self._seen = {sid: at for sid, at in self._seen.items() if at >= since}


def feed_of(ctx: Context) -> RevocationFeed:
    """This process's feed, made when the first subscriber comes."""
    if ctx.feed is None:
        ctx.feed = RevocationFeed(ctx)
    feed: RevocationFeed = ctx.feed
    return feed
