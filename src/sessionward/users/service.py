"""Accounts: registration, credentials, passwords, erasure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward import metrics
from sessionward.audit.service import EventType, record
from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Record
from sessionward.errors import AppError, ErrorCode, validation
from sessionward.mail.outgoing import Template, queue
from sessionward.sessions.devices import Device
from sessionward.users import store
from sessionward.users.models import ImportedUser, Role


def public(row: Record) -> dict[str, Any]:
    """The ``user`` object of API.md."""
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "role": row.role,
        "email_verified_at": iso(row.email_verified_at) if row.email_verified_at else None,
        "created_at": iso(row.created_at),
    }


def check_policy(ctx: Context, password: str, *, field: str) -> None:
    low, high = ctx.settings.password_min_length, ctx.settings.password_max_length
    if not low <= len(password) <= high:
        raise validation(field, f"Password must be between {low} and {high} characters")


async def create(
    ctx: Context,
    *,
    email: str,
    password: str,
    name: str | None,
    role: Role = Role.USER,
    verified: bool = False,
    device: Device | None = None,
    send_verification: bool = False,
) -> dict[str, Any]:
    check_policy(ctx, password, field="password")
    password_hash = await ctx.passwords.hash(password)
    now = ctx.clock.now()
    try:
        async with ctx.db.transaction() as tx:
            row = await store.insert_user(
                tx.conn,
                email=email,
                name=name,
                password_hash=password_hash,
                role=role.value,
                verified_at=now if verified else None,
                now=now,
            )
            await record(tx.conn, user_id=row.id, type=EventType.USER_REGISTERED, now=now, device=device)
            if send_verification and not verified:
                await queue(ctx, tx, template=Template.VERIFY_EMAIL, to=email, user_id=row.id, now=now)
    except sa_exc.IntegrityError as exc:
        raise AppError(ErrorCode.CONFLICT, "An account with this email already exists") from exc
    return public(row)


async def register(ctx: Context, *, email: str, password: str, name: str | None, device: Device) -> dict[str, Any]:
    if not ctx.settings.registration_enabled:
        raise AppError(ErrorCode.FORBIDDEN, "Registration is disabled")
    return await create(ctx, email=email, password=password, name=name, device=device, send_verification=True)


async def authenticate(ctx: Context, *, email: str, password: str) -> Record:
    """The user with these credentials; the same ``401`` and about the same time for both failures."""
    async with ctx.db.read() as conn:
        row = await store.by_email(conn, email.strip().lower())
    matches = await ctx.passwords.verify(row.password_hash if row else None, password)
    if row is None or not matches:
        metrics.LOGIN["failed"].inc()
        if row is not None:
            async with ctx.db.transaction() as tx:
                await record(tx.conn, user_id=row.id, type=EventType.LOGIN_FAILED, now=ctx.clock.now())
        raise AppError(ErrorCode.INVALID_CREDENTIALS, "Incorrect email or password")
    check_may_sign_in(ctx, row)
    if ctx.passwords.needs_rehash(row.password_hash):
        new_hash = await ctx.passwords.hash(password)
        async with ctx.db.transaction() as tx:
            await store.set_password(tx.conn, row.id, password_hash=new_hash, now=ctx.clock.now())
    return row


def check_may_sign_in(ctx: Context, row: Record) -> None:
    """What a sign-in needs besides credentials (``403`` otherwise)."""
    if ctx.settings.require_email_verification and row.email_verified_at is None:
        raise AppError(ErrorCode.FORBIDDEN, "Email address not verified")


async def confirm_password(ctx: Context, *, user_id: int, password: str) -> None:
    """``403`` on a wrong password: a 401 would tell clients their token is invalid."""
    async with ctx.db.read() as conn:
        row = await store.by_id(conn, user_id)
    if row is None or not await ctx.passwords.verify(row.password_hash, password):
        raise AppError(ErrorCode.FORBIDDEN, "Password is incorrect")


async def new_password_hash(ctx: Context, password: str) -> str:
    """Checked against the policy and hashed before any transaction opens (argon2 is slow)."""
    check_policy(ctx, password, field="new_password")
    return await ctx.passwords.hash(password)


async def save_password_hash(conn: AsyncConnection, *, user_id: int, password_hash: str, now: datetime) -> None:
    await store.set_password(conn, user_id, password_hash=password_hash, now=now)


async def delete(conn: AsyncConnection, *, user_id: int) -> None:
    await store.delete_user(conn, user_id)


async def get(ctx: Context, user_id: int) -> dict[str, Any] | None:
    async with ctx.db.read() as conn:
        row = await store.by_id(conn, user_id)
    return public(row) if row else None


async def find(conn: AsyncConnection, *, user_id: int | None = None, email: str | None = None) -> Record | None:
    """A user by id or by (normalised) address, with every column the account flows need."""
    if user_id is not None:
        return await store.by_id(conn, user_id)
    return await store.by_email(conn, email or "")


async def mark_verified(conn: AsyncConnection, *, user_id: int, now: datetime, email: str | None = None) -> Record:
    """The address counts as verified from ``now`` (kept if it already was); ``email`` replaces the address."""
    return await store.verify_email(conn, user_id, now=now, email=email)


# --------------------------------------------------------------------------- import (apps/importing.py)


async def import_batch(
    conn: AsyncConnection, entries: Sequence[ImportedUser], *, update: bool, now: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    """A batch of imported users, in the caller's transaction: new emails are inserted, existing ones are
    replaced with ``update`` and left alone without. The ids inserted and the ids replaced, by email."""
    taken = await store.ids_by_email(conn, [entry.email for entry in entries])
    inserted = await store.insert_imported(conn, [entry for entry in entries if entry.email not in taken], now=now)
    replaced = {entry.email: taken[entry.email] for entry in entries if entry.email in taken} if update else {}
    await store.replace_imported(conn, [entry for entry in entries if entry.email in replaced], now=now)
    return inserted, replaced


NO_PASSWORD = ""  # verifies as no password at all (``Passwords.verify``): the account signs in only as its app says


async def insert_passwordless(
    conn: AsyncConnection, *, email: str, name: str | None, role: Role, verified: bool, now: datetime
) -> Record:
    """An account without a password (an app that keeps its own login signs it in: ``apps.service``)."""
    verified_at = now if verified else None
    return await store.insert_user(
        conn, email=email, name=name, password_hash=NO_PASSWORD, role=role.value, verified_at=verified_at, now=now
    )
