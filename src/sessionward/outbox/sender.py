"""The sender: one loop per process delivers what the outbox holds, under a lease, with backoff.

A row is leased before it is attempted, so two processes (or two machines) never attempt one row at once; a
lease that runs out (a process killed mid-batch) frees the row for any sender. Delivery is at least once: a
process killed after the receiver accepted a row and before it was marked sends it again, under the same id
(a mail's ``Message-ID``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.clock import Clock
from sessionward.db import Database, Record
from sessionward.outbox import store

log = logging.getLogger(__name__)

RETRY_FOR = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
LEASE = timedelta(minutes=5)
# A row is attempted only while this much of its lease is left: longer than one delivery may take.
LEASE_MARGIN = timedelta(seconds=90)
# Outcomes are recorded this many at a time (a write transaction each): a process killed between a delivery and
# its record delivers at most this many rows again.
SETTLE_EVERY = 10


class Outcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # nothing to deliver (a request for a mail to an address with no account)
    FAILED = "failed"  # refused for good: not retried
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str | None = None  # the receiver's answer, or why it failed


class Handler(Protocol):
    """Delivers the rows of one kind, in order, and tells what became of each. It stops early (leaving the rest
    leased to be released) when ``leased`` says the lease is running out."""

    def deliver(self, rows: Sequence[Record], leased: Callable[[], bool]) -> AsyncIterator[tuple[Record, Result]]: ...


def next_attempt(*, created_at: datetime, attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed attempts; ``None``: retried long enough, give up.

    The first retry within 30 s, then twice as long each time up to an hour, the last one 24 h after the row
    was written (jittered, so senders that failed together do not retry together)."""
    give_up_at = created_at + RETRY_FOR
    if now >= give_up_at:
        return None
    wait = min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_WAIT)
    jittered: timedelta = wait * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
    return min(now + jittered, give_up_at)


class Sender:
    def __init__(self, db: Database, clock: Clock, *, batch: int = 20, poll_seconds: float = 1.0) -> None:
        self.db = db
        self.clock = clock
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.handlers: dict[str, Handler] = {}
        self.owner = secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A row was committed in this process: deliver now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                full = await self.deliver_due()
            except Exception as exc:  # noqa: BLE001 - a failed round (database down) is logged; the next tries again
                # The type and SQLSTATE only: a database error's text carries the statement's parameters.
                cause = getattr(exc, "orig", None) or exc.__cause__
                sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
                log.warning("outbox round failed", extra={"exc_type": type(exc).__name__, "sqlstate": sqlstate})
                full = False
            if not full:
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def deliver_due(self) -> bool:
        """One round: claim a batch of due rows and deliver them. Whether the batch was full (more may wait)."""
        now = self.clock.now()
        async with self.db.read() as conn:
            if not await store.any_due(conn, now=now):
                return False
        until = now + LEASE
        async with self.db.transaction() as tx:
            rows = await store.claim(tx.conn, owner=self.owner, now=now, until=until, limit=self.batch)
        settled: set[int] = set()
        done: list[tuple[Record, Result]] = []
        try:
            for kind in dict.fromkeys(row.kind for row in rows):
                handler = self.handlers[kind]
                ours = [row for row in rows if row.kind == kind]
                async for row, result in handler.deliver(ours, lambda: self.clock.now() < until - LEASE_MARGIN):
                    done.append((row, result))
                    settled.add(row.id)
                    if len(done) >= SETTLE_EVERY:
                        await self._settle(done)
                        done = []
        finally:
            left = [row.id for row in rows if row.id not in settled]
            async with self.db.transaction() as tx:
                await self._settle_in(tx.conn, done)
                if left:
                    await store.release(tx.conn, row_ids=left, owner=self.owner)
        return len(rows) == self.batch

    async def _settle(self, done: list[tuple[Record, Result]]) -> None:
        async with self.db.transaction() as tx:
            await self._settle_in(tx.conn, done)

    async def _settle_in(self, conn: AsyncConnection, done: list[tuple[Record, Result]]) -> None:
        """Record what became of rows: sent, skipped, failed, or due again after a backoff."""
        now = self.clock.now()
        for row, result in done:
            detail = result.detail[:200] if result.detail else None
            outcome = result.outcome
            if outcome is Outcome.RETRY:
                due_at = next_attempt(created_at=row.created_at, attempts=row.attempts + 1, now=now)
                if due_at is not None:
                    await store.retry(conn, row_id=row.id, owner=self.owner, due_at=due_at, detail=detail or "")
                    continue
                outcome = Outcome.FAILED
            attempted = outcome is not Outcome.SKIPPED
            await store.finish(
                conn, row_id=row.id, owner=self.owner, now=now, outcome=outcome, detail=detail, attempted=attempted
            )
            if outcome is Outcome.FAILED:
                log.warning("outbox row failed", extra={"outbox_id": row.id, "kind": row.kind, "detail": detail})
