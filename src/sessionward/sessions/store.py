"""SQL for sessions. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.db import Record, UTCDateTime
from sessionward.prepared import Prepared
from sessionward.sessions.tables import sessions
from sessionward.users.tables import users

_LISTED = (
    sessions.c.id,
    sessions.c.device_info,
    sessions.c.ip_address,
    sessions.c.created_at,
    sessions.c.last_activity,
    sessions.c.expires_at,
    sessions.c.aal,
    sessions.c.amr,
    sessions.c.auth_time,
)
STRENGTH = (sessions.c.aal, sessions.c.amr, sessions.c.auth_time)


def active(
    now: datetime | BindParameter[datetime], idle_cutoff: datetime | BindParameter[datetime]
) -> ColumnElement[bool]:
    return and_(
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > now,
        sessions.c.last_activity > idle_cutoff,
    )


async def insert_session(
    conn: AsyncConnection,
    *,
    session_id: str,
    user_id: int,
    device_info: dict[str, Any],
    ip: str | None,
    user_agent: str,
    now: datetime,
    expires_at: datetime,
    aal: str,
    amr: str,
    auth_time: datetime,
) -> None:
    stmt = insert(sessions).values(
        aal=aal,
        amr=amr,
        auth_time=auth_time,
        id=session_id,
        user_id=user_id,
        device_info=device_info,
        ip_address=ip,
        user_agent=user_agent,
        created_at=now,
        last_activity=now,
        expires_at=expires_at,
    )
    await conn.execute(stmt)


async def lock_user(conn: AsyncConnection, *, user_id: int) -> None:
    """One login of a user at a time (PostgreSQL): each counts the sessions for the cap, and must see the others'.
    ``NO KEY UPDATE`` leaves foreign-key checks (a refresh inserting a token) unblocked. SQLite's ``BEGIN
    IMMEDIATE`` already serialises every write, and SQLAlchemy renders no ``FOR`` clause there."""
    await conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update(key_share=True))


# Built once (the refresh and verification paths): building a statement costs more than running it.
_TOUCHED = (sessions.c.user_id, sessions.c.expires_at, sessions.c.device_info, sessions.c.ip_address, *STRENGTH)
_TOUCH_FOR_REFRESH = Prepared(
    update(sessions)
    .where(
        sessions.c.id == bindparam("session_id"),
        active(bindparam("now", type_=UTCDateTime), bindparam("idle_cutoff", type_=UTCDateTime)),
    )
    .values(last_activity=bindparam("now"))
    .returning(*_TOUCHED),
    _TOUCHED,
)
_STATE = (
    select(
        sessions.c.user_id,
        sessions.c.expires_at,
        sessions.c.last_activity,
        sessions.c.revoked_at,
        users.c.email,
        users.c.name,
        users.c.role,
        users.c.email_verified_at,
        users.c.created_at,
    )
    .join(users, users.c.id == sessions.c.user_id)
    .where(sessions.c.id == bindparam("session_id"))
)


async def touch_for_refresh(
    conn: AsyncConnection, *, session_id: str, now: datetime, idle_cutoff: datetime
) -> Record | None:
    """Mark the session used now, if it is active; its owner, expiry, device and recorded IP."""
    params = {"session_id": session_id, "now": now, "idle_cutoff": idle_cutoff}
    return await _TOUCH_FOR_REFRESH.first(conn, params)


async def set_ip(conn: AsyncConnection, *, session_id: str, ip: str | None) -> None:
    await conn.execute(update(sessions).where(sessions.c.id == session_id).values(ip_address=ip))


async def strength(conn: AsyncConnection, session_id: str) -> Record | None:
    return (await conn.execute(select(*STRENGTH).where(sessions.c.id == session_id))).first()


async def set_strength(conn: AsyncConnection, *, session_id: str, aal: str, amr: str, auth_time: datetime) -> None:
    """A new authentication within the session (step-up): a refresh carries the new strength from here."""
    stmt = update(sessions).where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
    await conn.execute(stmt.values(aal=aal, amr=amr, auth_time=auth_time))


async def touch(conn: AsyncConnection, *, session_id: str, now: datetime) -> None:
    stmt = update(sessions).where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
    await conn.execute(stmt.values(last_activity=now))


async def state(conn: AsyncConnection, session_id: str) -> Record | None:
    """What verifying an access token needs: the session's state and its user's public fields."""
    return (await conn.execute(_STATE, {"session_id": session_id})).first()


async def list_active(conn: AsyncConnection, *, user_id: int, now: datetime, idle_cutoff: datetime) -> Sequence[Record]:
    stmt = (
        select(*_LISTED)
        .where(sessions.c.user_id == user_id, active(now, idle_cutoff))
        .order_by(sessions.c.last_activity.desc(), sessions.c.created_at.desc(), sessions.c.id)
    )
    return (await conn.execute(stmt)).all()


async def revoke(
    conn: AsyncConnection,
    *,
    user_id: int,
    now: datetime,
    reason: str,
    only: Sequence[str] | None = None,
    keep: str | None = None,
) -> list[str]:
    """Revoke the user's unrevoked sessions (``only`` these, or all but ``keep``); the ids revoked."""
    stmt = update(sessions).where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
    if only is not None:
        stmt = stmt.where(sessions.c.id.in_(only))
    if keep is not None:
        stmt = stmt.where(sessions.c.id != keep)
    stmt = stmt.values(revoked_at=now, revoke_reason=reason).returning(sessions.c.id)
    return list((await conn.execute(stmt)).scalars())


async def over_cap(
    conn: AsyncConnection, *, user_id: int, now: datetime, idle_cutoff: datetime, cap: int, keep: str
) -> list[str]:
    """Active sessions beyond the cap, least recently active first to go (the older one on a tie). Never ``keep``,
    the session being created: a login must not evict itself, even when others were active at the same instant
    or later (a refresh that committed while the login ran)."""
    stmt = (
        select(sessions.c.id)
        .where(sessions.c.user_id == user_id, sessions.c.id != keep, active(now, idle_cutoff))
        .order_by(sessions.c.last_activity.desc(), sessions.c.created_at.desc(), sessions.c.id.desc())
        .offset(cap - 1)
    )
    return list((await conn.execute(stmt)).scalars())


async def devices_seen(conn: AsyncConnection, *, user_id: int) -> Sequence[Record]:
    """Every session the user still has a row of (any state): its device and when it was last used."""
    stmt = select(sessions.c.device_info, sessions.c.last_activity).where(sessions.c.user_id == user_id)
    return (await conn.execute(stmt)).all()


async def revoked_since(conn: AsyncConnection, *, since: datetime, after: str = "", limit: int) -> Sequence[Record]:
    """Sessions revoked at or after ``since``, oldest first (the revocation stream).

    ``after`` is the last session id read at the instant ``since``: the next page starts past it, so a page
    boundary among sessions revoked at one instant (a sign-out everywhere) neither repeats nor stalls.
    """
    stmt = (
        select(sessions.c.id, sessions.c.user_id, sessions.c.revoked_at)
        .where(
            or_(
                sessions.c.revoked_at > since,
                and_(sessions.c.revoked_at == since, sessions.c.id > after),
            )
        )
        .order_by(sessions.c.revoked_at, sessions.c.id)
        .limit(limit)
    )
    return (await conn.execute(stmt)).all()
