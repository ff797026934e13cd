"""SQL for refresh tokens and the access-token blacklist. Connection first; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    Boolean,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from sessionward.db import Record, UTCDateTime
from sessionward.prepared import Prepared
from sessionward.sessions.devices import Device, os_names
from sessionward.sessions.store import STRENGTH, active
from sessionward.sessions.tables import sessions
from sessionward.tokens.tables import refresh_tokens, token_blacklist

_child = aliased(refresh_tokens, name="child")

# The hot path's statements are built once: building one costs more than SQLite takes to run it.
_INSERTED = ["session_id", "user_id", "token_hash", "parent_id", "generation", "created_at", "expires_at"]
_INSERT = Prepared(insert(refresh_tokens), keys=_INSERTED)
_LIVE = (
    refresh_tokens.c.token_hash == bindparam("hash"),
    refresh_tokens.c.session_id == bindparam("sid"),
    refresh_tokens.c.rotated_at.is_(None),
    refresh_tokens.c.revoked_at.is_(None),
    refresh_tokens.c.expires_at > bindparam("now"),
)
_ROTATED = (refresh_tokens.c.id, refresh_tokens.c.generation)
# Retiring a token for its successor, whichever way the token is found.
_RETIRING = update(refresh_tokens).values(rotated_at=bindparam("now"), successor_sealed=bindparam("sealed"))
_RETIRE = _RETIRING.where(*_LIVE).returning(*_ROTATED)
_ROTATE = Prepared(_RETIRE, _ROTATED)
_KEPT = select(refresh_tokens.c.expires_at).where(*_LIVE)

# PostgreSQL: a refresh that wins, whole, as one statement in a transaction of its own (one round trip, not four
# with BEGIN and COMMIT). The session is touched only if it is active, the presented token is live in it, and its
# device family and address are the presented ones where those are checked; the token is retired for its successor
# only if the session was touched. Any other refresh (a lost race, a grace retry, reuse, another device or address)
# returns no row and goes the whole way, in a transaction; a lost race, after this touched the session, ends there
# in a grace answer or reuse, both of which commit the touch as well.
#
# The presented token is found by its hash alone (``presented``, materialized: no condition of the statement's is
# pushed into it), so its unique index is the only one the scan can take. With the session's id beside the hash,
# PostgreSQL took the session_id index whenever refresh_tokens had no statistics yet (a new database, until its
# first autoanalyze) and read the session's whole chain of tokens on every refresh.
_presented = (
    select(
        refresh_tokens.c.id,
        refresh_tokens.c.session_id,
        refresh_tokens.c.rotated_at,
        refresh_tokens.c.revoked_at,
        refresh_tokens.c.expires_at,
    )
    .where(refresh_tokens.c.token_hash == bindparam("hash"))
    .cte("presented")
    .prefix_with("MATERIALIZED")
)
_same_device = and_(
    sessions.c.device_info[literal_column("'browser'")].as_string() == bindparam("browser", type_=String),
    sessions.c.device_info[literal_column("'os'")].as_string() == any_(bindparam("oses", type_=ARRAY(String))),
)
_touched = (
    update(sessions)
    .where(
        sessions.c.id == bindparam("sid"),
        active(bindparam("now", type_=UTCDateTime), bindparam("idle_cutoff", type_=UTCDateTime)),
        or_(bindparam("any_device", type_=Boolean), _same_device),
        or_(bindparam("any_ip", type_=Boolean), sessions.c.ip_address.is_not_distinct_from(bindparam("ip"))),
        exists().where(
            _presented.c.session_id == bindparam("sid"),
            _presented.c.rotated_at.is_(None),
            _presented.c.revoked_at.is_(None),
            _presented.c.expires_at > bindparam("now"),
        ),
    )
    .values(last_activity=bindparam("now"))
    .returning(sessions.c.user_id, sessions.c.expires_at, *STRENGTH)
    .cte("touched")
)
# The presented row by its id (the primary key: with no statistics, a join to ``presented`` was a scan of the table),
# only once the session is touched; what may have changed since the statement's snapshot is checked on the row.
_retired = (
    _RETIRING.where(
        refresh_tokens.c.id
        == select(_presented.c.id)
        .where(_presented.c.session_id == bindparam("sid"), _presented.c.expires_at > bindparam("now"))
        .scalar_subquery(),
        refresh_tokens.c.user_id == select(_touched.c.user_id).scalar_subquery(),
        refresh_tokens.c.rotated_at.is_(None),
        refresh_tokens.c.revoked_at.is_(None),
    )
    .returning(*_ROTATED)
    .cte("retired")
)
_inserted = (
    insert(refresh_tokens)
    .from_select(
        _INSERTED,
        select(
            bindparam("sid", type_=String),
            _touched.c.user_id,
            bindparam("child_hash", type_=String),
            _retired.c.id,
            _retired.c.generation + literal_column("1", Integer),
            bindparam("now", type_=UTCDateTime),
            func.least(bindparam("expires_at", type_=UTCDateTime), _touched.c.expires_at),
        ).select_from(_retired.join(_touched, literal_column("true"))),
    )
    .returning(refresh_tokens.c.user_id, refresh_tokens.c.expires_at)
    .cte("inserted")
)
# The successor's owner and expiry, and the session's strength (which its access token carries).
_GRANTED = (_inserted.c.user_id, _inserted.c.expires_at, _touched.c.aal, _touched.c.amr, _touched.c.auth_time)
_REFRESH_IN_ONE = Prepared(select(*_GRANTED).select_from(_inserted.join(_touched, literal_column("true"))), _GRANTED)


async def insert_refresh(
    conn: AsyncConnection,
    *,
    session_id: str,
    user_id: int,
    token_hash: str,
    parent_id: int | None,
    generation: int,
    now: datetime,
    expires_at: datetime,
) -> None:
    row = {
        "session_id": session_id,
        "user_id": user_id,
        "token_hash": token_hash,
        "parent_id": parent_id,
        "generation": generation,
        "created_at": now,
        "expires_at": expires_at,
    }
    await _INSERT.run(conn, row)


async def rotate(
    conn: AsyncConnection,
    *,
    token_hash: str,
    session_id: str,
    user_id: int,
    now: datetime,
    sealed: bytes,
    child_hash: str,
    expires_at: datetime,
) -> bool:
    """Retire the live token for its successor (stored, and sealed in the parent); ``False`` if it was not live
    (one winner)."""
    params = {"hash": token_hash, "sid": session_id, "now": now, "sealed": sealed}
    won = await _ROTATE.first(conn, params)
    if won is None:
        return False
    await insert_refresh(
        conn,
        session_id=session_id,
        user_id=user_id,
        token_hash=child_hash,
        parent_id=won.id,
        generation=won.generation + 1,
        now=now,
        expires_at=expires_at,
    )
    return True


async def refresh_in_one(
    conn: AsyncConnection,
    *,
    token_hash: str,
    session_id: str,
    now: datetime,
    idle_cutoff: datetime,
    device: Device,
    same_device: bool,
    same_ip: bool,
    sealed: bytes,
    child_hash: str,
    expires_at: datetime,
) -> Record | None:
    """PostgreSQL: touch, retire and succeed in one statement (see ``_REFRESH_IN_ONE``); the successor's owner and
    expiry and the session's strength, or ``None`` (nothing changed, or only the session touched ahead of a lost
    race). ``same_device``, ``same_ip``: the presented device's family, its address, must be the session's."""
    params = {
        "hash": token_hash,
        "sid": session_id,
        "now": now,
        "idle_cutoff": idle_cutoff,
        "any_device": not same_device,
        "browser": device.browser,
        "oses": os_names(device.os),
        "any_ip": not same_ip,
        "ip": device.ip,
        "sealed": sealed,
        "child_hash": child_hash,
        "expires_at": expires_at,
    }
    return await _REFRESH_IN_ONE.first(conn, params, alone=True)


async def live(conn: AsyncConnection, *, token_hash: str, session_id: str, now: datetime) -> Record | None:
    """The live token (rotation off: it stays valid); its expiry."""
    return (await conn.execute(_KEPT, {"hash": token_hash, "sid": session_id, "now": now})).first()


async def with_successor(conn: AsyncConnection, token_hash: str) -> Record | None:
    """A presented token that did not rotate: its state and that of its successor, if any."""
    stmt = (
        select(
            refresh_tokens.c.session_id,
            refresh_tokens.c.user_id,
            refresh_tokens.c.rotated_at,
            refresh_tokens.c.revoked_at,
            refresh_tokens.c.expires_at,
            refresh_tokens.c.successor_sealed,
            _child.c.token_hash.label("child_hash"),
            _child.c.rotated_at.label("child_rotated_at"),
            _child.c.revoked_at.label("child_revoked_at"),
            _child.c.expires_at.label("child_expires_at"),
        )
        .outerjoin(_child, _child.c.parent_id == refresh_tokens.c.id)
        .where(refresh_tokens.c.token_hash == token_hash)
    )
    return (await conn.execute(stmt)).first()


async def presented(conn: AsyncConnection, token_hash: str) -> Record | None:
    """A refresh token's session, owner, lifetime and state, and its session's assurance level (introspection)."""
    stmt = select(
        refresh_tokens.c.session_id,
        refresh_tokens.c.user_id,
        refresh_tokens.c.created_at,
        refresh_tokens.c.expires_at,
        refresh_tokens.c.rotated_at,
        refresh_tokens.c.revoked_at,
        sessions.c.aal,
    ).join(sessions, sessions.c.id == refresh_tokens.c.session_id)
    return (await conn.execute(stmt.where(refresh_tokens.c.token_hash == token_hash))).first()


async def owner(conn: AsyncConnection, token_hash: str) -> Record | None:
    stmt = select(refresh_tokens.c.session_id, refresh_tokens.c.user_id)
    return (await conn.execute(stmt.where(refresh_tokens.c.token_hash == token_hash))).first()


async def revoke_for_sessions(conn: AsyncConnection, session_ids: Sequence[str], *, now: datetime) -> None:
    if not session_ids:
        return
    stmt = update(refresh_tokens).where(
        refresh_tokens.c.session_id.in_(session_ids), refresh_tokens.c.revoked_at.is_(None)
    )
    await conn.execute(stmt.values(revoked_at=now))


async def blacklist(
    conn: AsyncConnection,
    *,
    jti: str,
    user_id: int,
    session_id: str,
    reason: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(token_blacklist).values(
        jti=jti, user_id=user_id, session_id=session_id, reason=reason, blacklisted_at=now, expires_at=expires_at
    )
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["jti"]))


async def blacklisted(conn: AsyncConnection, session_id: str) -> set[str]:
    stmt = select(token_blacklist.c.jti).where(token_blacklist.c.session_id == session_id)
    return set((await conn.execute(stmt)).scalars())
