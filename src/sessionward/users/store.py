"""SQL for users. Connection first; never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.db import Record
from sessionward.users.tables import users

_PUBLIC = (users.c.id, users.c.email, users.c.name, users.c.role, users.c.email_verified_at, users.c.created_at)


async def insert_user(
    conn: AsyncConnection,
    *,
    email: str,
    name: str | None,
    password_hash: str,
    role: str,
    verified_at: datetime | None,
    now: datetime,
) -> Record:
    stmt = (
        insert(users)
        .values(
            email=email,
            name=name,
            password_hash=password_hash,
            role=role,
            email_verified_at=verified_at,
            created_at=now,
            updated_at=now,
        )
        .returning(*_PUBLIC)
    )
    return (await conn.execute(stmt)).one()


async def by_email(conn: AsyncConnection, email: str) -> Record | None:
    stmt = select(*_PUBLIC, users.c.password_hash).where(users.c.email == email)
    return (await conn.execute(stmt)).first()


async def by_id(conn: AsyncConnection, user_id: int) -> Record | None:
    stmt = select(*_PUBLIC, users.c.password_hash).where(users.c.id == user_id)
    return (await conn.execute(stmt)).first()


async def set_password(conn: AsyncConnection, user_id: int, *, password_hash: str, now: datetime) -> None:
    stmt = update(users).where(users.c.id == user_id).values(password_hash=password_hash, updated_at=now)
    await conn.execute(stmt)


async def delete_user(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(delete(users).where(users.c.id == user_id))


async def verify_email(conn: AsyncConnection, user_id: int, *, now: datetime, email: str | None) -> Record:
    verified_at = func.coalesce(users.c.email_verified_at, now) if email is None else now
    values = {"email_verified_at": verified_at, "updated_at": now} | ({"email": email} if email else {})
    stmt = update(users).where(users.c.id == user_id).values(**values).returning(*_PUBLIC)
    return (await conn.execute(stmt)).one()
