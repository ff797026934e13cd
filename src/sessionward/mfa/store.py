"""SQL for second factors and login challenges. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.db import Record
from sessionward.mfa.tables import mfa_challenges, recovery_codes, totp_factors


async def totp(conn: AsyncConnection, user_id: int) -> Record | None:
    stmt = select(totp_factors).where(totp_factors.c.user_id == user_id)
    return (await conn.execute(stmt)).first()


async def put_totp(conn: AsyncConnection, *, user_id: int, sealed: bytes, now: datetime) -> None:
    """A new, unconfirmed secret in place of any unconfirmed one (the caller made sure none is confirmed)."""
    await conn.execute(delete(totp_factors).where(totp_factors.c.user_id == user_id))
    await conn.execute(insert(totp_factors).values(user_id=user_id, secret_sealed=sealed, created_at=now))


async def accept_step(conn: AsyncConnection, *, user_id: int, step: int, confirm_at: datetime | None = None) -> bool:
    """Take a code's time step if it is later than the last one taken (each code once, RFC 6238 §5.2);
    ``confirm_at`` also confirms the factor. ``False``: a replay, or one already used."""
    values: dict[str, Any] = {"last_step": step}
    if confirm_at is not None:
        values["confirmed_at"] = confirm_at
    stmt = update(totp_factors).where(
        totp_factors.c.user_id == user_id,
        or_(totp_factors.c.last_step.is_(None), totp_factors.c.last_step < step),
    )
    return (await conn.execute(stmt.values(**values))).rowcount == 1


async def delete_totp(conn: AsyncConnection, *, user_id: int) -> bool:
    return (await conn.execute(delete(totp_factors).where(totp_factors.c.user_id == user_id))).rowcount == 1


async def replace_recovery_codes(conn: AsyncConnection, *, user_id: int, hashes: Sequence[str], now: datetime) -> None:
    await delete_recovery_codes(conn, user_id=user_id)
    rows = [{"user_id": user_id, "code_hash": code_hash, "created_at": now} for code_hash in hashes]
    await conn.execute(insert(recovery_codes), rows)


async def delete_recovery_codes(conn: AsyncConnection, *, user_id: int) -> None:
    await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))


async def use_recovery_code(conn: AsyncConnection, *, user_id: int, code_hash: str, now: datetime) -> bool:
    stmt = update(recovery_codes).where(
        recovery_codes.c.user_id == user_id,
        recovery_codes.c.code_hash == code_hash,
        recovery_codes.c.used_at.is_(None),
    )
    return (await conn.execute(stmt.values(used_at=now))).rowcount == 1


async def recovery_codes_left(conn: AsyncConnection, user_id: int) -> int:
    stmt = select(func.count()).where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
    return int((await conn.execute(stmt)).scalar_one())


async def insert_challenge(
    conn: AsyncConnection, *, token_hash: str, user_id: int, device: dict[str, Any], now: datetime, expires_at: datetime
) -> None:
    stmt = insert(mfa_challenges).values(
        token_hash=token_hash, user_id=user_id, device=device, created_at=now, expires_at=expires_at
    )
    await conn.execute(stmt)


async def challenge(conn: AsyncConnection, *, token_hash: str, now: datetime) -> Record | None:
    stmt = select(mfa_challenges).where(mfa_challenges.c.token_hash == token_hash, mfa_challenges.c.expires_at > now)
    return (await conn.execute(stmt)).first()


async def take_challenge(conn: AsyncConnection, *, token_hash: str, now: datetime) -> Record | None:
    """The challenge, deleted as it is read (single use); ``None`` if unknown, expired or taken meanwhile."""
    stmt = (
        delete(mfa_challenges)
        .where(mfa_challenges.c.token_hash == token_hash, mfa_challenges.c.expires_at > now)
        .returning(mfa_challenges.c.user_id)
    )
    return (await conn.execute(stmt)).first()


async def count_failure(conn: AsyncConnection, *, token_hash: str, burn_at: int) -> None:
    """One more wrong code; the challenge is gone at ``burn_at``."""
    stmt = (
        update(mfa_challenges)
        .where(mfa_challenges.c.token_hash == token_hash)
        .values(failures=mfa_challenges.c.failures + 1)
        .returning(mfa_challenges.c.failures)
    )
    failures = (await conn.execute(stmt)).scalar()
    if failures is not None and failures >= burn_at:
        await conn.execute(delete(mfa_challenges).where(mfa_challenges.c.token_hash == token_hash))
