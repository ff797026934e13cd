"""SQL for security events. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.audit.tables import audit_events
from sessionward.db import Record


async def insert_event(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(audit_events).values(**values))


async def insert_events(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(audit_events), list(rows))


async def list_events(conn: AsyncConnection, *, user_id: int, limit: int, before: int | None) -> Sequence[Record]:
    stmt = select(
        audit_events.c.id,
        audit_events.c.type,
        audit_events.c.at,
        audit_events.c.session_id,
        audit_events.c.ip_address,
        audit_events.c.device_info,
        audit_events.c.details,
    ).where(audit_events.c.user_id == user_id)
    if before is not None:
        stmt = stmt.where(audit_events.c.id < before)
    return (await conn.execute(stmt.order_by(audit_events.c.id.desc()).limit(limit))).all()
