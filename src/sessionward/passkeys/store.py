"""SQL for passkeys and WebAuthn challenges. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.db import Record
from sessionward.passkeys.tables import passkeys, webauthn_challenges

LISTED = (
    passkeys.c.id,
    passkeys.c.name,
    passkeys.c.created_at,
    passkeys.c.last_used_at,
    passkeys.c.transports,
    passkeys.c.backed_up,
)


async def insert_challenge(
    conn: AsyncConnection,
    *,
    challenge_hash: str,
    purpose: str,
    user_id: int | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    values = {"challenge_hash": challenge_hash, "purpose": purpose, "user_id": user_id}
    await conn.execute(insert(webauthn_challenges).values(**values, created_at=now, expires_at=expires_at))


async def take_challenge(conn: AsyncConnection, *, challenge_hash: str, purpose: str, now: datetime) -> Record | None:
    """The challenge, deleted as it is read (single use); ``None`` if unknown, of another purpose or expired."""
    stmt = (
        delete(webauthn_challenges)
        .where(
            webauthn_challenges.c.challenge_hash == challenge_hash,
            webauthn_challenges.c.purpose == purpose,
            webauthn_challenges.c.expires_at > now,
        )
        .returning(webauthn_challenges.c.user_id)
    )
    return (await conn.execute(stmt)).first()


async def insert_passkey(conn: AsyncConnection, **values: Any) -> Record:
    return (await conn.execute(insert(passkeys).values(**values).returning(*LISTED))).one()


async def of_user(conn: AsyncConnection, user_id: int) -> Sequence[Record]:
    stmt = select(*LISTED, passkeys.c.credential_id).where(passkeys.c.user_id == user_id).order_by(passkeys.c.id)
    return (await conn.execute(stmt)).all()


async def count(conn: AsyncConnection, user_id: int) -> int:
    stmt = select(func.count()).where(passkeys.c.user_id == user_id)
    return int((await conn.execute(stmt)).scalar_one())


async def by_credential(conn: AsyncConnection, credential_id: bytes) -> Record | None:
    return (await conn.execute(select(passkeys).where(passkeys.c.credential_id == credential_id))).first()


async def used(conn: AsyncConnection, *, passkey_id: int, sign_count: int, backed_up: bool, now: datetime) -> None:
    stmt = update(passkeys).where(passkeys.c.id == passkey_id)
    await conn.execute(stmt.values(sign_count=sign_count, backed_up=backed_up, last_used_at=now))


async def rename(conn: AsyncConnection, *, user_id: int, passkey_id: int, name: str) -> Record | None:
    stmt = update(passkeys).where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
    return (await conn.execute(stmt.values(name=name).returning(*LISTED))).first()


async def remove(conn: AsyncConnection, *, user_id: int, passkey_id: int) -> bool:
    stmt = delete(passkeys).where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
    return (await conn.execute(stmt)).rowcount == 1
