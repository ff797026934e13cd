"""SQL for the tokens of mailed links. Connection first; never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.db import Record
from sessionward.mail.tables import mail_tokens


async def insert_token(
    conn: AsyncConnection,
    *,
    token_hash: str,
    user_id: int,
    purpose: str,
    email: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    stmt = insert(mail_tokens).values(
        token_hash=token_hash, user_id=user_id, purpose=purpose, email=email, created_at=now, expires_at=expires_at
    )
    await conn.execute(stmt)


async def take(conn: AsyncConnection, *, token_hash: str, purpose: str, now: datetime) -> Record | None:
    """The token's row, deleted as it is read (single use); ``None`` if unknown, of another purpose or expired
    (an expired one is left for cleanup)."""
    stmt = (
        delete(mail_tokens)
        .where(
            mail_tokens.c.token_hash == token_hash,
            mail_tokens.c.purpose == purpose,
            mail_tokens.c.expires_at > now,
        )
        .returning(mail_tokens.c.user_id, mail_tokens.c.email)
    )
    return (await conn.execute(stmt)).first()


async def forget(conn: AsyncConnection, *, token_hash: str) -> None:
    await conn.execute(delete(mail_tokens).where(mail_tokens.c.token_hash == token_hash))


async def forget_all(conn: AsyncConnection, *, user_id: int, purpose: str) -> None:
    stmt = delete(mail_tokens).where(mail_tokens.c.user_id == user_id, mail_tokens.c.purpose == purpose)
    await conn.execute(stmt)
