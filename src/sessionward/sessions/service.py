"""Sessions: login, the device list, revocation, logout, and the account changes that end sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sessionward import metrics
from sessionward.audit.service import EventType, record
from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Transaction
from sessionward.errors import not_found
from sessionward.mail import service as mail
from sessionward.mail.outgoing import Template, queue
from sessionward.mfa import service as mfa
from sessionward.passkeys import service as passkeys
from sessionward.sessions import store
from sessionward.sessions.devices import Device, same_device_family
from sessionward.tokens import service as tokens
from sessionward.tokens.jwt import Strength, authenticated
from sessionward.tokens.opaque import new_session_id
from sessionward.tokens.service import Principal, TokenPair
from sessionward.users import service as users


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: dict[str, Any]
    tokens: TokenPair
    session: dict[str, Any]

    def body(self, *, refresh_in_body: bool = True) -> dict[str, Any]:
        tokens = self.tokens.body(refresh_in_body=refresh_in_body)
        return {"user": self.user, "tokens": tokens, "session": self.session}


async def login(ctx: Context, *, email: str, password: str, device: Device) -> LoginResult | dict[str, Any]:
    """A session, or for a user with a second factor the challenge of the second stage (``login_mfa``)."""
    limits = ctx.limits
    await limits.hit(limits.login_per_ip, device.ip or "-")
    await limits.hit(limits.login, device.ip or "-", email.strip().lower())
    user = await users.authenticate(ctx, email=email, password=password)
    second_stage = await mfa.challenge_for(ctx, user, device=device)
    if second_stage is not None:
        metrics.LOGIN["mfa_required"].inc()
        return second_stage
    strength = authenticated((mfa.PWD,), at=ctx.clock.now())
    return await open_session(ctx, user, device=device, event=EventType.LOGIN_SUCCEEDED, strength=strength)


async def login_mfa(
    ctx: Context,
    *,
    challenge: str,
    totp: str | None,
    recovery_code: str | None,
    passkey: dict[str, Any] | None,
    device: Device,
) -> LoginResult:
    user, strength, factor = await mfa.pass_challenge(
        ctx, challenge=challenge, totp=totp, recovery_code=recovery_code, passkey=passkey, device=device
    )
    details = {"mfa": factor.value}
    return await open_session(
        ctx, user, device=device, event=EventType.LOGIN_SUCCEEDED, strength=strength, details=details
    )


async def login_with_passkey(ctx: Context, *, credential: dict[str, Any], device: Device) -> LoginResult:
    """A sign-in with a passkey alone: two factors when the authenticator verified its user (a PIN, a fingerprint),
    else one."""
    await ctx.limits.hit(ctx.limits.login_per_ip, device.ip or "-")
    used = await passkeys.verify_assertion(ctx, credential, purpose=passkeys.Purpose.LOGIN, user_id=None, device=device)
    user = used.user
    users.check_may_sign_in(ctx, user)
    strength = authenticated((used.method,), at=ctx.clock.now(), two_factors=used.user_verified)
    details = {"passkey": used.name}
    return await open_session(
        ctx, user, device=device, event=EventType.PASSKEY_LOGIN, strength=strength, details=details
    )


async def open_session(
    ctx: Context,
    user: Any,
    *,
    device: Device,
    event: EventType,
    strength: Strength,
    details: dict[str, Any] | None = None,
) -> LoginResult:
    """A new session of an authenticated user, with its first tokens; the cap evicts the least recently active
    one beyond it. ``event`` records how it began (a login, or a sign-in an app made for its user), ``strength``
    how the user was authenticated."""
    now = ctx.clock.now()
    settings = ctx.settings
    session_id = new_session_id()
    expires_at = now + settings.session_expires_in
    device_info = device.info()
    async with ctx.db.transaction() as tx:
        await store.lock_user(tx.conn, user_id=user.id)
        await _alert_if_new_device(ctx, tx, user_id=user.id, device=device, now=now)
        await store.insert_session(
            tx.conn,
            session_id=session_id,
            user_id=user.id,
            device_info=device_info,
            ip=device.ip,
            user_agent=device.user_agent,
            now=now,
            expires_at=expires_at,
            aal=strength.aal.value,
            amr=" ".join(strength.amr),
            auth_time=datetime.fromtimestamp(strength.auth_time, UTC),
        )
        pair = await tokens.issue_first(
            ctx,
            tx.conn,
            user_id=user.id,
            session_id=session_id,
            session_expires_at=expires_at,
            strength=strength,
            now=now,
        )
        await record(
            tx.conn, user_id=user.id, type=event, now=now, session_id=session_id, device=device, details=details
        )
        over = await store.over_cap(
            tx.conn,
            user_id=user.id,
            now=now,
            idle_cutoff=now - settings.session_idle_timeout,
            cap=settings.max_sessions_per_user,
            keep=session_id,
        )
        if over:
            evicted = await tokens.end_sessions(ctx, tx, user_id=user.id, only=over, reason="evicted", now=now)
            for evicted_id in evicted:
                await record(tx.conn, user_id=user.id, type=EventType.SESSION_EVICTED, now=now, session_id=evicted_id)
    metrics.LOGIN["succeeded"].inc()
    session = {"id": session_id, "expires_at": iso(expires_at), "device_info": device_info}
    return LoginResult(users.public(user), pair, session)


NEW_DEVICE_WINDOW = timedelta(days=30)


async def _alert_if_new_device(ctx: Context, tx: Transaction, *, user_id: int, device: Device, now: datetime) -> None:
    """ "New sign-in to your account" when no session of the last 30 days had this browser and OS family. Not on
    an account's first sign-in: with no session at all there is nothing it could be new against."""
    if not ctx.settings.new_device_alerts:
        return
    seen = await store.devices_seen(tx.conn, user_id=user_id)
    recent = [row.device_info for row in seen if row.last_activity >= now - NEW_DEVICE_WINDOW]
    if not seen or any(same_device_family(info, device) for info in recent):
        return
    params = {
        "browser": device.browser,
        "os": device.os,
        "device": device.device.value,
        "ip": device.ip,
        "at": iso(now),
    }
    await queue(ctx, tx, template=Template.NEW_SIGN_IN, to=None, user_id=user_id, now=now, params=params)


def _listed(row: Any, current: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "device_info": row.device_info,
        "ip_address": row.ip_address,
        "created_at": iso(row.created_at),
        "last_activity": iso(row.last_activity),
        "expires_at": iso(row.expires_at),
        "is_current": row.id == current,
        "aal": row.aal,
        "amr": row.amr.split(),
        "auth_time": iso(row.auth_time),
    }


async def active_sessions(ctx: Context, *, user_id: int, current: str | None = None) -> list[dict[str, Any]]:
    """The user's active sessions, most recently active first."""
    now = ctx.clock.now()
    async with ctx.db.read() as conn:
        rows = await store.list_active(
            conn, user_id=user_id, now=now, idle_cutoff=now - ctx.settings.session_idle_timeout
        )
    return [_listed(row, current) for row in rows]


async def device_list(ctx: Context, principal: Principal, *, header_session: str | None) -> dict[str, Any]:
    # The x-session-id header of the guide counts only when it names one of the caller's sessions.
    listed = await active_sessions(ctx, user_id=principal.user_id)
    ids = {item["id"] for item in listed}
    current = header_session if header_session in ids else principal.session_id
    for item in listed:
        item["is_current"] = item["id"] == current
    return {
        "current_session": next((item for item in listed if item["is_current"]), None),
        "other_sessions": [item for item in listed if not item["is_current"]],
    }


async def revoke_one(ctx: Context, principal: Principal, *, session_id: str, event: EventType) -> None:
    """``404`` unless it is an unrevoked session of the caller (another user's looks the same)."""
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        ended = await tokens.end_sessions(
            ctx, tx, user_id=principal.user_id, only=[session_id], reason=event.value, now=now
        )
        if not ended:
            raise not_found("Session")
        await record(tx.conn, user_id=principal.user_id, type=event, now=now, session_id=session_id)


async def revoke_others(ctx: Context, principal: Principal) -> int:
    await mfa.require_step_up(ctx, principal)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        ended = await tokens.end_sessions(
            ctx, tx, user_id=principal.user_id, keep=principal.session_id, reason="revoked_others", now=now
        )
        await record(
            tx.conn,
            user_id=principal.user_id,
            type=EventType.SESSIONS_REVOKED,
            now=now,
            session_id=principal.session_id,
            details={"revoked": len(ended)},
        )
    return len(ended)


async def logout(ctx: Context, principal: Principal, *, session_id: str | None, everywhere: bool) -> None:
    if session_id is not None and not everywhere:
        await revoke_one(ctx, principal, session_id=session_id, event=EventType.LOGOUT)
        return
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        only = None if everywhere else [principal.session_id]
        await tokens.end_sessions(ctx, tx, user_id=principal.user_id, only=only, reason="logout", now=now)
        await tokens.blacklist(ctx, tx, principal, reason="logout", now=now)
        details = {"all": True} if everywhere else None
        await record(
            tx.conn,
            user_id=principal.user_id,
            type=EventType.LOGOUT,
            now=now,
            session_id=principal.session_id,
            details=details,
        )


async def change_password(ctx: Context, principal: Principal, *, current: str, new: str, device: Device) -> None:
    """A new password ends every other session: whoever knew the old one is signed out."""
    await mfa.require_step_up(ctx, principal, password_given=True)
    await users.confirm_password(ctx, user_id=principal.user_id, password=current)
    password_hash = await users.new_password_hash(ctx, new)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        await users.save_password_hash(tx.conn, user_id=principal.user_id, password_hash=password_hash, now=now)
        ended = await tokens.end_sessions(
            ctx, tx, user_id=principal.user_id, keep=principal.session_id, reason="password_changed", now=now
        )
        await record(
            tx.conn,
            user_id=principal.user_id,
            type=EventType.PASSWORD_CHANGED,
            now=now,
            session_id=principal.session_id,
            device=device,
            details={"sessions_revoked": len(ended)},
        )
        await mail.password_notice(ctx, tx, user_id=principal.user_id, how="change", device=device)


async def delete_account(ctx: Context, principal: Principal, *, password: str) -> None:
    """GDPR erasure: the user and, by cascade, every session, token and event."""
    await mfa.require_step_up(ctx, principal, password_given=True)
    await users.confirm_password(ctx, user_id=principal.user_id, password=password)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        await tokens.end_sessions(ctx, tx, user_id=principal.user_id, reason="account_deleted", now=now)
        await users.delete(tx.conn, user_id=principal.user_id)


async def admin_revoke_all(ctx: Context, *, user_id: int, admin_id: int) -> int:
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        ended = await tokens.end_sessions(ctx, tx, user_id=user_id, reason="admin", now=now)
        if ended:
            await record(
                tx.conn,
                user_id=user_id,
                type=EventType.SESSIONS_REVOKED,
                now=now,
                details={"revoked": len(ended), "by_admin": admin_id},
            )
    return len(ended)
