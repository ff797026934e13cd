"""SQL for webhook endpoints. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.db import Record
from sessionward.webhooks.tables import webhook_endpoints as endpoints

_LISTED = (
    endpoints.c.id,
    endpoints.c.url,
    endpoints.c.events,
    endpoints.c.created_at,
    endpoints.c.failing_since,
    endpoints.c.last_error,
    endpoints.c.disabled_at,
)


async def add(conn: AsyncConnection, *, url: str, events: list[str], secret_sealed: bytes, now: datetime) -> int:
    stmt = insert(endpoints).values(url=url, events=events, secret_sealed=secret_sealed, created_at=now)
    row_id: int = (await conn.execute(stmt.returning(endpoints.c.id))).scalar_one()
    return row_id


async def listed(conn: AsyncConnection, endpoint_id: int | None = None) -> Sequence[Record]:
    stmt = select(*_LISTED).order_by(endpoints.c.id)
    if endpoint_id is not None:
        stmt = stmt.where(endpoints.c.id == endpoint_id)
    return (await conn.execute(stmt)).all()


async def enabled(conn: AsyncConnection) -> Sequence[Record]:
    """The endpoints events are written for: their ids and the events they take."""
    stmt = select(endpoints.c.id, endpoints.c.events).where(endpoints.c.disabled_at.is_(None))
    return (await conn.execute(stmt)).all()


async def for_delivery(conn: AsyncConnection, endpoint_ids: Sequence[int]) -> Sequence[Record]:
    stmt = select(
        endpoints.c.id, endpoints.c.url, endpoints.c.secret_sealed, endpoints.c.failing_since, endpoints.c.disabled_at
    )
    return (await conn.execute(stmt.where(endpoints.c.id.in_(endpoint_ids)))).all()


async def remove(conn: AsyncConnection, endpoint_id: int) -> bool:
    result = await conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))
    return bool(result.rowcount)


async def succeeded(conn: AsyncConnection, endpoint_id: int) -> None:
    stmt = update(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.failing_since.is_not(None))
    await conn.execute(stmt.values(failing_since=None, last_error=None))


async def failed(conn: AsyncConnection, endpoint_id: int, *, now: datetime, error: str) -> datetime | None:
    """Records a failure; since when the endpoint has failed without a success (``None``: it is gone)."""
    stmt = update(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.failing_since.is_(None))
    await conn.execute(stmt.values(failing_since=now))
    stmt = update(endpoints).where(endpoints.c.id == endpoint_id).values(last_error=error[:200])
    since: datetime | None = (await conn.execute(stmt.returning(endpoints.c.failing_since))).scalar_one_or_none()
    return since


async def disable(conn: AsyncConnection, endpoint_id: int, *, now: datetime) -> None:
    stmt = update(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.disabled_at.is_(None))
    await conn.execute(stmt.values(disabled_at=now))
