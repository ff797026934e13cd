"""Account email: verification, password reset, email change. Each change, its event and its mails commit together.

The endpoints that take an address without authentication answer the same whether or not it has an account:
they only write a request to the outbox (one insert either way), and the sender decides, when it sends,
whether there is anyone to send it to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc

from sessionward.audit.service import EventType, record
from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Record, Transaction
from sessionward.errors import AppError, ErrorCode
from sessionward.mail import store
from sessionward.mail.outgoing import Purpose, Template, queue
from sessionward.mfa import service as mfa
from sessionward.sessions.devices import Device
from sessionward.tokens import service as tokens
from sessionward.tokens.opaque import hash_token
from sessionward.tokens.service import Principal
from sessionward.users import service as users

ON_ITS_WAY = "If the address belongs to an account that needs it, a mail is on its way"
TAKEN = "An account with this email already exists"


def invalid_link() -> AppError:
    return AppError(ErrorCode.VALIDATION, "This link is invalid or has expired")


async def _limit(ctx: Context, purpose: Purpose, email: str, device: Device) -> None:
    """``EMAIL_RATE_LIMIT`` per address and purpose, ten times that per IP."""
    await ctx.limits.hit(ctx.limits.email_per_ip, "email", device.ip or "-")
    await ctx.limits.hit(ctx.limits.email, "email", purpose.value, email)


async def _request(ctx: Context, *, template: Template, purpose: Purpose, email: str, device: Device) -> None:
    await _limit(ctx, purpose, email, device)
    async with ctx.db.transaction() as tx:
        await queue(ctx, tx, template=template, to=email, now=ctx.clock.now(), device=device)


async def request_verification(ctx: Context, *, email: str, device: Device) -> None:
    await _request(ctx, template=Template.VERIFY_EMAIL, purpose=Purpose.VERIFY_EMAIL, email=email, device=device)


async def forgot_password(ctx: Context, *, email: str, device: Device) -> None:
    await _request(ctx, template=Template.RESET_PASSWORD, purpose=Purpose.RESET_PASSWORD, email=email, device=device)


async def _redeem(tx: Transaction, *, token: str, purpose: Purpose, now: datetime) -> tuple[Record, str]:
    """The user a token was made for and the address it was sent to, the token used up.

    ``400`` if it is unknown, used, expired, of another purpose, or (verification, reset) sent to an address the
    account no longer has: raised inside the transaction, so a refused token is left as it was."""
    taken = await store.take(tx.conn, token_hash=hash_token(token), purpose=purpose.value, now=now)
    user = await users.find(tx.conn, user_id=taken.user_id) if taken is not None else None
    if taken is None or user is None or (purpose is not Purpose.CHANGE_EMAIL and user.email != taken.email):
        raise invalid_link()
    return user, taken.email


async def verify_email(ctx: Context, *, token: str) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        user, _ = await _redeem(tx, token=token, purpose=Purpose.VERIFY_EMAIL, now=now)
        verified = await users.mark_verified(tx.conn, user_id=user.id, now=now)
        tx.after_commit.append(lambda: ctx.cache.forget_user(user.id))
        await store.forget_all(tx.conn, user_id=user.id, purpose=Purpose.VERIFY_EMAIL.value)
        await record(tx.conn, user_id=user.id, type=EventType.EMAIL_VERIFIED, now=now)
    return users.public(verified)


async def reset_password(ctx: Context, *, token: str, new_password: str, device: Device) -> None:
    """A new password; every session ends (whoever knew the old one is signed out), the address counts as
    verified (the mail was read there), and a notice goes to it."""
    password_hash = await users.new_password_hash(ctx, new_password)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        user, _ = await _redeem(tx, token=token, purpose=Purpose.RESET_PASSWORD, now=now)
        await users.save_password_hash(tx.conn, user_id=user.id, password_hash=password_hash, now=now)
        await users.mark_verified(tx.conn, user_id=user.id, now=now)
        ended = await tokens.end_sessions(ctx, tx, user_id=user.id, reason="password_reset", now=now)
        await record(
            tx.conn,
            user_id=user.id,
            type=EventType.PASSWORD_RESET,
            now=now,
            device=device,
            details={"sessions_revoked": len(ended)},
        )
        await password_notice(ctx, tx, user_id=user.id, how="reset", device=device)


async def password_notice(ctx: Context, tx: Transaction, *, user_id: int, how: str, device: Device | None) -> None:
    """After a password change or reset: the outstanding reset links die and the account's address is told."""
    now = ctx.clock.now()
    await store.forget_all(tx.conn, user_id=user_id, purpose=Purpose.RESET_PASSWORD.value)
    params = {"how": how, "at": iso(now), "ip": device.ip if device else None}
    await queue(ctx, tx, template=Template.PASSWORD_CHANGED, to=None, user_id=user_id, now=now, params=params)


async def change_email(ctx: Context, principal: Principal, *, new_email: str, password: str, device: Device) -> None:
    """A confirmation to the new address and a notice to the old one; nothing changes until it is confirmed."""
    await mfa.require_step_up(ctx, principal, password_given=True)
    await users.confirm_password(ctx, user_id=principal.user_id, password=password)
    await _limit(ctx, Purpose.CHANGE_EMAIL, new_email, device)
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        user = await users.find(tx.conn, user_id=principal.user_id)
        if user is None:  # erased while this request ran
            raise AppError(ErrorCode.FORBIDDEN, "Account not found")
        if user.email == new_email:
            raise AppError(
                ErrorCode.VALIDATION,
                "This is already the account's address",
                errors=[{"field": "new_email", "message": "This is already the account's address"}],
            )
        if await users.find(tx.conn, email=new_email) is not None:
            raise AppError(ErrorCode.CONFLICT, TAKEN)
        details = {"old": user.email, "new": new_email}
        await record(
            tx.conn, user_id=user.id, type=EventType.EMAIL_CHANGE_REQUESTED, now=now, device=device, details=details
        )
        await queue(ctx, tx, template=Template.CHANGE_EMAIL, to=new_email, user_id=user.id, now=now)
        notice = {"new_email": new_email}
        await queue(
            ctx, tx, template=Template.EMAIL_CHANGE_REQUESTED, to=user.email, user_id=user.id, now=now, params=notice
        )


async def confirm_email_change(ctx: Context, *, token: str) -> dict[str, Any]:
    now = ctx.clock.now()
    try:
        async with ctx.db.transaction() as tx:
            user, new_email = await _redeem(tx, token=token, purpose=Purpose.CHANGE_EMAIL, now=now)
            if await users.find(tx.conn, email=new_email) is not None:
                raise AppError(ErrorCode.CONFLICT, TAKEN)
            changed = await users.mark_verified(tx.conn, user_id=user.id, now=now, email=new_email)
            tx.after_commit.append(lambda: ctx.cache.forget_user(user.id))
            for purpose in Purpose:  # links sent to the old address, or other new ones, die with the change
                await store.forget_all(tx.conn, user_id=user.id, purpose=purpose.value)
            details = {"old": user.email, "new": new_email}
            await record(tx.conn, user_id=user.id, type=EventType.EMAIL_CHANGED, now=now, details=details)
            notice = {"new_email": new_email}
            await queue(
                ctx, tx, template=Template.EMAIL_CHANGED, to=user.email, user_id=user.id, now=now, params=notice
            )
    except sa_exc.IntegrityError as exc:  # taken by another account between the check and the update
        raise AppError(ErrorCode.CONFLICT, TAKEN) from exc
    return users.public(changed)
