"""SQL for service keys. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.apps.tables import service_keys
from sessionward.db import Record

_LISTED = (
    service_keys.c.id,
    service_keys.c.name,
    service_keys.c.scopes,
    service_keys.c.created_at,
    service_keys.c.revoked_at,
)


async def insert_key(conn: AsyncConnection, *, name: str, key_hash: str, scopes: list[str], now: datetime) -> Record:
    stmt = insert(service_keys).values(name=name, key_hash=key_hash, scopes=scopes, created_at=now).returning(*_LISTED)
    return (await conn.execute(stmt)).one()


async def live_key(conn: AsyncConnection, key_hash: str) -> Record | None:
    stmt = select(*_LISTED).where(service_keys.c.key_hash == key_hash, service_keys.c.revoked_at.is_(None))
    return (await conn.execute(stmt)).first()


async def list_keys(conn: AsyncConnection) -> Sequence[Record]:
    return (await conn.execute(select(*_LISTED).order_by(service_keys.c.id))).all()


async def revoke_key(conn: AsyncConnection, key_id: int, *, now: datetime) -> bool:
    stmt = update(service_keys).where(service_keys.c.id == key_id, service_keys.c.revoked_at.is_(None))
    return (await conn.execute(stmt.values(revoked_at=now))).rowcount == 1
