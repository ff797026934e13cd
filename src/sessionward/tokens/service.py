"""Refresh rotation, access-token verification and revocation: the hot paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt as pyjwt
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward import metrics
from sessionward.audit.service import EventType, record
from sessionward.clock import iso
from sessionward.config import IpValidation
from sessionward.context import Context
from sessionward.db import Record, Transaction
from sessionward.errors import AppError, invalid_token
from sessionward.mail.outgoing import Template, queue
from sessionward.sessions import store as sessions_store
from sessionward.sessions.devices import Device, same_device_family
from sessionward.tokens import store
from sessionward.tokens.jwt import UNKNOWN_STRENGTH, Aal, IssuedAccess, Strength, authenticated
from sessionward.tokens.opaque import hash_token, new_refresh_token, seal, unseal
from sessionward.tokens.revocation import SessionState


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: IssuedAccess
    refresh: str
    refresh_expires_in: int

    def body(self, *, refresh_in_body: bool = True) -> dict[str, Any]:
        """The wire shape; browser (cookie) mode leaves the refresh token out: it travels in a cookie."""
        refresh: dict[str, Any] = {"token": self.refresh} if refresh_in_body else {}
        refresh["expires_in"] = self.refresh_expires_in
        return {
            "access": self.access.body(),
            "refresh": refresh,
        }


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made an authenticated request: from a verified access token and a live session."""

    user_id: int
    session_id: str
    jti: str
    expires_at: datetime
    user: dict[str, Any] = field(compare=False)
    strength: Strength = UNKNOWN_STRENGTH  # as the access token says


def _seconds(until: datetime, now: datetime) -> int:
    return max(0, int((until - now).total_seconds()))


def stored_strength(row: Any) -> Strength:
    """A session's strength as its row keeps it (``sessions_store.STRENGTH``)."""
    return Strength(Aal(row.aal), tuple(row.amr.split()), int(row.auth_time.timestamp()))


async def issue_first(
    ctx: Context,
    conn: AsyncConnection,
    *,
    user_id: int,
    session_id: str,
    session_expires_at: datetime,
    strength: Strength,
    now: datetime,
) -> TokenPair:
    """The first refresh token of a new session (generation 1) and an access token."""
    token = new_refresh_token()
    expires_at = min(now + ctx.settings.refresh_token_expires_in, session_expires_at)
    await store.insert_refresh(
        conn,
        session_id=session_id,
        user_id=user_id,
        token_hash=hash_token(token),
        parent_id=None,
        generation=1,
        now=now,
        expires_at=expires_at,
    )
    access = ctx.access.issue(user_id=user_id, session_id=session_id, strength=strength, now=now)
    return TokenPair(access, token, _seconds(expires_at, now))


# ---------------------------------------------------------------- refresh


class _Refused(Exception):
    """Rolls the refresh transaction back: nothing is burnt or touched. ``event`` is recorded after."""

    def __init__(self, event: EventType | None = None, user_id: int = 0, details: dict[str, Any] | None = None):
        super().__init__("refresh refused")
        self.event = event
        self.user_id = user_id
        self.details = details


@dataclass(frozen=True, slots=True)
class _Reused:
    """The outcome of reuse detection, committed (the session is revoked) before answering 401."""


@dataclass(frozen=True, slots=True)
class _Successor:
    """The token a rotation would hand out, made before the transaction: the less work done inside it, the
    shorter the write lock is held (SQLite has one for the whole database)."""

    token: str
    token_hash: str
    sealed: bytes


@dataclass(frozen=True, slots=True)
class _Granted:
    """A refresh token to hand out; the access token that goes with it is signed after the commit."""

    user_id: int
    refresh: str
    refresh_expires_in: int
    strength: Strength  # the session's, carried into the access token: a refresh is not a new authentication
    outcome: str = "rotated"  # or "grace": the successor already handed out, handed out again


async def refresh(ctx: Context, *, presented: str, session_id: str, device: Device) -> TokenPair:
    await ctx.limits.hit(ctx.limits.refresh, session_id)
    now = ctx.clock.now()
    successor = None
    if ctx.settings.refresh_token_rotation:
        token = new_refresh_token()
        successor = _Successor(token, hash_token(token), seal(presented, token))
    granted = None
    if successor is not None and not ctx.db.is_sqlite:
        granted = await _rotate_in_one(ctx, presented, successor, session_id=session_id, device=device, now=now)
    if granted is None:
        granted = await _refresh_in_transaction(
            ctx, presented=presented, successor=successor, session_id=session_id, device=device, now=now
        )
    metrics.REFRESH[granted.outcome].inc()
    access = ctx.access.issue(user_id=granted.user_id, session_id=session_id, strength=granted.strength, now=now)
    return TokenPair(access, granted.refresh, granted.refresh_expires_in)


async def _rotate_in_one(
    ctx: Context, presented: str, successor: _Successor, *, session_id: str, device: Device, now: datetime
) -> _Granted | None:
    """PostgreSQL: a refresh that wins, in one statement (``store.refresh_in_one``); ``None``: take the whole
    way."""
    settings = ctx.settings
    async with ctx.db.alone() as conn:
        won = await store.refresh_in_one(
            conn,
            token_hash=hash_token(presented),
            session_id=session_id,
            now=now,
            idle_cutoff=now - settings.session_idle_timeout,
            device=device,
            same_device=settings.device_fingerprinting,
            same_ip=settings.session_ip_validation is not IpValidation.OFF,
            sealed=successor.sealed,
            child_hash=successor.token_hash,
            expires_at=now + settings.refresh_token_expires_in,
        )
    if won is None:
        return None
    ctx.cache.touch(session_id, now)
    return _Granted(won.user_id, successor.token, _seconds(won.expires_at, now), stored_strength(won))


async def _refresh_in_transaction(
    ctx: Context, *, presented: str, successor: _Successor | None, session_id: str, device: Device, now: datetime
) -> _Granted:
    try:
        async with ctx.db.transaction() as tx:
            outcome = await _refresh(
                ctx, tx, presented=presented, successor=successor, session_id=session_id, device=device, now=now
            )
    except _Refused as refused:
        metrics.REFRESH["refused"].inc()
        if refused.event is not None:
            async with ctx.db.transaction() as tx:
                await record(
                    tx.conn,
                    user_id=refused.user_id,
                    type=refused.event,
                    now=now,
                    session_id=session_id,
                    device=device,
                    details=refused.details,
                )
        raise invalid_token() from None
    if isinstance(outcome, _Reused):
        metrics.REFRESH["reused"].inc()
        raise invalid_token()
    return outcome


async def _refresh(
    ctx: Context,
    tx: Transaction,
    *,
    presented: str,
    successor: _Successor | None,
    session_id: str,
    device: Device,
    now: datetime,
) -> _Granted | _Reused:
    settings = ctx.settings
    conn = tx.conn
    session = await sessions_store.touch_for_refresh(
        conn, session_id=session_id, now=now, idle_cutoff=now - settings.session_idle_timeout
    )
    if session is None:
        raise _Refused()
    # The refresh is activity: access checks read the cached state, so it learns once this commits.
    tx.after_commit.append(lambda: ctx.cache.touch(session_id, now))
    token_hash = hash_token(presented)
    mismatch = _client_mismatch(ctx, session, device)
    if mismatch is None:
        won = await _rotate_or_keep(
            ctx, conn, presented, token_hash, successor, session, session_id=session_id, now=now
        )
        if won is not None:
            await _note_ip_change(ctx, conn, session, session_id=session_id, device=device, now=now)
            return won
    # Lost, already rotated, unknown, or from another device: rules 1-4 of API.md decide first.
    row = await store.with_successor(conn, token_hash)
    verdict = _classify(ctx, row, session_id=session_id, now=now)
    if row is None or verdict == "invalid":
        raise _Refused()
    if verdict == "reuse":
        await end_sessions(ctx, tx, user_id=row.user_id, only=[session_id], reason="refresh_token_reused", now=now)
        await record(
            conn,
            user_id=row.user_id,
            type=EventType.REFRESH_TOKEN_REUSED,
            now=now,
            session_id=session_id,
            device=device,
        )
        await _alert_signed_out(ctx, tx, session, user_id=row.user_id, now=now)
        return _Reused()
    if mismatch is not None:
        raise _Refused(mismatch[0], session.user_id, mismatch[1])
    # Here the verdict is "grace": a live token is only left alone because of a mismatch.
    handed_out = unseal(presented, row.successor_sealed)
    if handed_out is None or hash_token(handed_out) != row.child_hash:
        raise _Refused()
    return _Granted(
        session.user_id, handed_out, _seconds(row.child_expires_at, now), stored_strength(session), outcome="grace"
    )


async def _alert_signed_out(ctx: Context, tx: Transaction, session: Record, *, user_id: int, now: datetime) -> None:
    """ "We signed out a device": which one (as its session recorded it) and when."""
    info = session.device_info or {}
    params = {key: info.get(key) or "Unknown" for key in ("browser", "os", "device")} | {"at": iso(now)}
    await queue(ctx, tx, template=Template.DEVICE_SIGNED_OUT, to=None, user_id=user_id, now=now, params=params)


async def _rotate_or_keep(
    ctx: Context,
    conn: AsyncConnection,
    presented: str,
    token_hash: str,
    successor: _Successor | None,
    session: Record,
    *,
    session_id: str,
    now: datetime,
) -> _Granted | None:
    """Rotation: retire the presented token for its successor (one winner). Off (no successor): the same token
    stays valid."""
    if successor is None:
        kept = await store.live(conn, token_hash=token_hash, session_id=session_id, now=now)
        if kept is None:
            return None
        return _Granted(session.user_id, presented, _seconds(kept.expires_at, now), stored_strength(session))
    expires_at = min(now + ctx.settings.refresh_token_expires_in, session.expires_at)
    won = await store.rotate(
        conn,
        token_hash=token_hash,
        session_id=session_id,
        user_id=session.user_id,
        now=now,
        sealed=successor.sealed,
        child_hash=successor.token_hash,
        expires_at=expires_at,
    )
    if not won:
        return None
    return _Granted(session.user_id, successor.token, _seconds(expires_at, now), stored_strength(session))


def _classify(ctx: Context, row: Record | None, *, session_id: str, now: datetime) -> str:
    """``live``: not rotated (left alone because of a device mismatch). ``grace``: the immediate parent
    of the live token, rotated within the interval. ``reuse``: any other rotated token of this session
    (RFC 9700 §4.14.2: a rotated token presented again means two holders). ``invalid``: the rest."""
    if row is None or row.session_id != session_id or row.revoked_at is not None or row.expires_at <= now:
        return "invalid"
    if row.rotated_at is None:
        return "live"
    live_child = (
        row.child_hash is not None
        and row.child_rotated_at is None
        and row.child_revoked_at is None
        and row.child_expires_at > now
    )
    in_grace = now - row.rotated_at <= ctx.settings.refresh_token_reuse_interval
    return "grace" if live_child and in_grace and row.successor_sealed is not None else "reuse"


def _client_mismatch(ctx: Context, session: Record, device: Device) -> tuple[EventType, dict[str, Any]] | None:
    if ctx.settings.device_fingerprinting and not same_device_family(session.device_info, device):
        recorded = {"browser": session.device_info.get("browser"), "os": session.device_info.get("os")}
        return EventType.DEVICE_MISMATCH, {
            "expected": recorded,
            "presented": {"browser": device.browser, "os": device.os},
        }
    if ctx.settings.session_ip_validation is IpValidation.STRICT and session.ip_address != device.ip:
        return EventType.IP_CHANGED, {"from": session.ip_address, "to": device.ip, "refused": True}
    return None


async def _note_ip_change(
    ctx: Context,
    conn: AsyncConnection,
    session: Record,
    *,
    session_id: str,
    device: Device,
    now: datetime,
) -> None:
    if ctx.settings.session_ip_validation is IpValidation.OFF or session.ip_address == device.ip:
        return
    await sessions_store.set_ip(conn, session_id=session_id, ip=device.ip)
    details = {"from": session.ip_address, "to": device.ip}
    await record(
        conn,
        user_id=session.user_id,
        type=EventType.IP_CHANGED,
        now=now,
        session_id=session_id,
        device=device,
        details=details,
    )


# ---------------------------------------------------------------- revocation


async def end_sessions(
    ctx: Context,
    tx: Transaction,
    *,
    user_id: int,
    now: datetime,
    reason: str,
    only: list[str] | None = None,
    keep: str | None = None,
) -> list[str]:
    """Revoke sessions with their refresh tokens; their access tokens die here once this commits."""
    ended = await sessions_store.revoke(tx.conn, user_id=user_id, now=now, reason=reason, only=only, keep=keep)
    await store.revoke_for_sessions(tx.conn, ended, now=now)
    tx.after_commit.append(lambda: ctx.cache.revoke_sessions(ended))
    tx.after_commit.append(lambda: metrics.REVOKED[metrics.REASONS[reason]].inc(len(ended)))
    return ended


async def blacklist(ctx: Context, tx: Transaction, principal: Principal, *, reason: str, now: datetime) -> None:
    """One access token (by ``jti``) stops working before it expires."""
    await store.blacklist(
        tx.conn,
        jti=principal.jti,
        user_id=principal.user_id,
        session_id=principal.session_id,
        reason=reason,
        now=now,
        expires_at=principal.expires_at,
    )
    tx.after_commit.append(lambda: ctx.cache.blacklist(principal.session_id, principal.jti))


async def strengthen(
    ctx: Context,
    tx: Transaction,
    principal: Principal,
    *,
    methods: tuple[str, ...],
    now: datetime,
    two_factors: bool = False,
) -> IssuedAccess:
    """A new authentication within the caller's session (step-up, a factor just proved): its ``auth_time`` is now,
    its methods grow by ``methods`` (two factors once two were used, or ``two_factors``: a passkey that verified its
    user), and an access token that says so. NIST SP 800-63B §7.2: within a session that reached two factors, one
    authenticates again."""
    row = await sessions_store.strength(tx.conn, principal.session_id)
    current = stored_strength(row) if row is not None else UNKNOWN_STRENGTH
    new = authenticated(current.amr + methods, at=now, two_factors=two_factors or current.aal is Aal.TWO)
    await sessions_store.set_strength(
        tx.conn, session_id=principal.session_id, aal=new.aal.value, amr=" ".join(new.amr), auth_time=now
    )
    return ctx.access.issue(user_id=principal.user_id, session_id=principal.session_id, strength=new, now=now)


# ---------------------------------------------------------------- verification


async def authenticate(ctx: Context, token: str) -> Principal:
    """A verified access token of a live session, or ``401``. No database round trip when warm."""
    now = ctx.clock.now()
    claims = ctx.access.verify(token, now=now)
    state = ctx.cache.get(claims.session_id) or await _load_state(ctx, claims.session_id)
    settings = ctx.settings
    if (
        state.revoked
        or state.user_id != claims.user_id
        or state.expires_at <= now
        or state.last_activity <= now - settings.session_idle_timeout
        or claims.jti in state.blacklisted
    ):
        raise invalid_token()
    if settings.session_activity_tracking and now - state.last_activity >= settings.activity_write_interval:
        state.last_activity = now
        async with ctx.db.transaction() as tx:
            await sessions_store.touch(tx.conn, session_id=claims.session_id, now=now)
    return Principal(claims.user_id, claims.session_id, claims.jti, claims.expires_at, state.user, claims.strength)


async def _load_state(ctx: Context, session_id: str) -> SessionState:
    read_at = ctx.cache.stamp()
    async with ctx.db.read() as conn:
        row = await sessions_store.state(conn, session_id)
        jtis = await store.blacklisted(conn, session_id) if row is not None else set()
    if row is None:
        # Gone (erased or cleaned up): remembered as revoked, so a flood of such tokens stays cheap.
        state = SessionState(
            user_id=0, expires_at=ctx.clock.now(), last_activity=ctx.clock.now(), revoked=True, user={}
        )
    else:
        user = {
            "id": row.user_id,
            "email": row.email,
            "name": row.name,
            "role": row.role,
            "email_verified_at": iso(row.email_verified_at) if row.email_verified_at else None,
            "created_at": iso(row.created_at),
        }
        state = SessionState(row.user_id, row.expires_at, row.last_activity, row.revoked_at is not None, user, jtis)
    ctx.cache.put(session_id, state, read_at=read_at)
    return state


async def revoke_presented(ctx: Context, *, token: str, hint: str | None) -> None:
    """RFC 7009: a refresh token ends its session; an access token is blacklisted. Unknown: nothing
    (§2.2: answered 200 all the same). The hint only decides which kind is tried first."""
    now = ctx.clock.now()
    kinds = (_revoke_access, _revoke_refresh) if hint == "access_token" else (_revoke_refresh, _revoke_access)
    for revoke in kinds:
        if await revoke(ctx, token, now):
            return


async def _revoke_refresh(ctx: Context, token: str, now: datetime) -> bool:
    async with ctx.db.read() as conn:
        owner = await store.owner(conn, hash_token(token))
    if owner is None:
        return False
    async with ctx.db.transaction() as tx:
        ended = await end_sessions(
            ctx, tx, user_id=owner.user_id, only=[owner.session_id], reason="token_revoked", now=now
        )
        if ended:
            details = {"token_type": "refresh_token"}
            await record(
                tx.conn,
                user_id=owner.user_id,
                type=EventType.TOKEN_REVOKED,
                now=now,
                session_id=owner.session_id,
                details=details,
            )
    return True


async def _revoke_access(ctx: Context, token: str, now: datetime) -> bool:
    try:
        claims = ctx.access.verify(token, now=now)
    except AppError:
        return False
    state = ctx.cache.get(claims.session_id) or await _load_state(ctx, claims.session_id)
    if state.revoked or state.user_id != claims.user_id:
        return True  # already dead with its session (or its account: no row to blacklist against)
    async with ctx.db.transaction() as tx:
        principal = Principal(claims.user_id, claims.session_id, claims.jti, claims.expires_at, {})
        await blacklist(ctx, tx, principal, reason="token_revoked", now=now)
    return True


# ---------------------------------------------------------------- introspection


async def introspect(ctx: Context, *, token: str, hint: str | None) -> dict[str, Any]:
    """RFC 7662: what an app's backend may know of a token it was given; ``{"active": false}`` for anything
    that would not be accepted now (unknown, expired, revoked, rotated, of an ended session)."""
    kinds = (
        (_introspect_refresh, _introspect_access)
        if hint == "refresh_token"
        else (_introspect_access, _introspect_refresh)
    )
    for kind in kinds:
        answer = await kind(ctx, token)
        if answer is not None:
            return answer
    return {"active": False}


def _live(ctx: Context, state: SessionState, user_id: int) -> bool:
    now = ctx.clock.now()
    idle_cutoff = now - ctx.settings.session_idle_timeout
    return (
        not state.revoked and state.user_id == user_id and state.expires_at > now and state.last_activity > idle_cutoff
    )


async def _introspect_access(ctx: Context, token: str) -> dict[str, Any] | None:
    try:
        claims = ctx.access.verify(token, now=ctx.clock.now())
    except AppError:
        return None
    state = ctx.cache.get(claims.session_id) or await _load_state(ctx, claims.session_id)
    if not _live(ctx, state, claims.user_id) or claims.jti in state.blacklisted:
        return {"active": False}
    issued = pyjwt.decode(token, options={"verify_signature": False})  # verified above: only read here
    aal = claims.strength.aal
    return _active(claims.user_id, claims.session_id, issued["iat"], issued["exp"], aal, "access_token")


async def _introspect_refresh(ctx: Context, token: str) -> dict[str, Any] | None:
    async with ctx.db.read() as conn:
        row = await store.presented(conn, hash_token(token))
    if row is None:
        return None
    state = ctx.cache.get(row.session_id) or await _load_state(ctx, row.session_id)
    usable = row.rotated_at is None and row.revoked_at is None and row.expires_at > ctx.clock.now()
    if not usable or not _live(ctx, state, row.user_id):
        return {"active": False}
    iat, exp = int(row.created_at.timestamp()), int(row.expires_at.timestamp())
    return _active(row.user_id, row.session_id, iat, exp, Aal(row.aal), "refresh_token")


def _active(user_id: int, session_id: str, iat: int, exp: int, aal: Aal, token_type: str) -> dict[str, Any]:
    return {
        "active": True,
        "sub": str(user_id),
        "sid": session_id,
        "iat": iat,
        "exp": exp,
        "aal": aal.value,
        "token_type": token_type,
    }
