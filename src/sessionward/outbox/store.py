"""SQL for the outbox. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.db import Record
from sessionward.outbox.tables import outbox


async def insert_row(
    conn: AsyncConnection, *, kind: str, user_id: int | None, payload: dict[str, Any], now: datetime
) -> None:
    stmt = insert(outbox).values(kind=kind, user_id=user_id, payload=payload, created_at=now, due_at=now, attempts=0)
    await conn.execute(stmt)


def _claimable(now: datetime) -> Any:
    return and_(
        outbox.c.done_at.is_(None),
        outbox.c.due_at <= now,
        or_(outbox.c.leased_until.is_(None), outbox.c.leased_until < now),
    )


async def any_due(conn: AsyncConnection, *, now: datetime) -> bool:
    stmt = select(outbox.c.id).where(_claimable(now)).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def claim(conn: AsyncConnection, *, owner: str, now: datetime, until: datetime, limit: int) -> Sequence[Record]:
    """Lease up to ``limit`` due rows, oldest first. PostgreSQL: rows another sender is claiming are skipped,
    never waited on (SKIP LOCKED); SQLite: claims are write transactions, one at a time."""
    chosen = (
        select(outbox.c.id)
        .where(_claimable(now))
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(outbox)
        .where(outbox.c.id.in_(chosen))
        .values(leased_until=until, lease_owner=owner)
        .returning(
            outbox.c.id, outbox.c.kind, outbox.c.user_id, outbox.c.payload, outbox.c.created_at, outbox.c.attempts
        )
    )
    return sorted((await conn.execute(stmt)).all(), key=lambda row: row.id)


def _leased(row_id: int, owner: str) -> Any:
    return and_(outbox.c.id == row_id, outbox.c.lease_owner == owner, outbox.c.done_at.is_(None))


async def finish(
    conn: AsyncConnection, *, row_id: int, owner: str, now: datetime, outcome: str, detail: str | None, attempted: bool
) -> None:
    stmt = (
        update(outbox)
        .where(_leased(row_id, owner))
        .values(
            done_at=now,
            outcome=outcome,
            detail=detail,
            leased_until=None,
            attempts=outbox.c.attempts + int(attempted),
        )
    )
    await conn.execute(stmt)


async def retry(conn: AsyncConnection, *, row_id: int, owner: str, due_at: datetime, detail: str) -> None:
    stmt = (
        update(outbox)
        .where(_leased(row_id, owner))
        .values(due_at=due_at, detail=detail, leased_until=None, lease_owner=None, attempts=outbox.c.attempts + 1)
    )
    await conn.execute(stmt)


async def release(conn: AsyncConnection, *, row_ids: Sequence[int], owner: str) -> None:
    """Rows leased but not attempted: free for the next claim at once."""
    stmt = (
        update(outbox)
        .where(outbox.c.id.in_(row_ids), outbox.c.lease_owner == owner, outbox.c.done_at.is_(None))
        .values(leased_until=None, lease_owner=None)
    )
    await conn.execute(stmt)


async def pending(conn: AsyncConnection) -> dict[str, tuple[int, datetime | None]]:
    """How many rows wait, per kind, and since when (for /metrics and tests)."""
    stmt = (
        select(outbox.c.kind, func.count(), func.min(outbox.c.created_at))
        .where(outbox.c.done_at.is_(None))
        .group_by(outbox.c.kind)
    )
    return {kind: (count, oldest) for kind, count, oldest in (await conn.execute(stmt)).all()}
