"""Webhooks (Standard Webhooks): what happened to users and sessions, told to the app's endpoints.

An event is a row of the outbox per endpoint that takes it, written in the transaction of the change (so it is
told if and only if the change committed), delivered at least once under a stable ``webhook-id``, and in order
per endpoint and user (the row's ordering key).
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from sessionward.clock import iso
from sessionward.context import Context
from sessionward.db import Record, Transaction
from sessionward.errors import AppError, ErrorCode, not_found
from sessionward.outbox import store as outbox
from sessionward.webhooks import store

KIND = "webhook"
SECRET_PURPOSE = b"webhook secret"


class Event(StrEnum):
    USER_CREATED = "user.created"
    USER_DELETED = "user.deleted"
    SESSION_CREATED = "session.created"
    SESSION_REVOKED = "session.revoked"
    REFRESH_TOKEN_REUSED = "refresh_token.reused"
    PASSWORD_CHANGED = "password.changed"
    MFA_CHANGED = "mfa.changed"


async def emit(ctx: Context, tx: Transaction, event: Event, *, user_id: int, now: datetime, **data: Any) -> None:
    """Write ``event`` for every enabled endpoint that takes it, in ``tx``."""
    await emit_many(ctx, tx, event, user_id=user_id, now=now, items=[data])


async def emit_many(
    ctx: Context, tx: Transaction, event: Event, *, user_id: int, now: datetime, items: list[dict[str, Any]]
) -> None:
    """One event per item (each session a sign-out everywhere ended), in their order."""
    if not items:
        return
    takers = [row.id for row in await store.enabled(tx.conn) if event.value in row.events]
    rows = [
        {
            "kind": KIND,
            "user_id": user_id,
            "ordering_key": f"{KIND}:{endpoint_id}:{user_id}",
            "payload": {
                "endpoint_id": endpoint_id,
                "id": f"msg_{secrets.token_urlsafe(18)}",
                "type": event.value,
                "timestamp": iso(now),
                "data": {"user_id": user_id, **data},
            },
        }
        for data in items
        for endpoint_id in takers
    ]
    if rows:
        await outbox.insert_rows(tx.conn, rows, now=now)
        tx.after_commit.append(ctx.outbox.wake)


# ---------------------------------------------------------------- endpoints (admin API and CLI)


# http or https, a host name or IPv4 address, an optional port, then anything without white space.
URL_PATTERN = r"^https?://[A-Za-z0-9._~-]+(:[0-9]{1,5})?([/?#][^\s]*)?$"


def check_url(url: str) -> str:
    if not re.fullmatch(URL_PATTERN, url) or len(url) > 2000:
        raise AppError(ErrorCode.VALIDATION, "url must be an http or https URL with a host")
    return url


def check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(Event))
    if not events or unknown:
        raise AppError(ErrorCode.VALIDATION, f"events must be some of: {', '.join(Event)}")
    return list(dict.fromkeys(events))


def new_secret() -> str:
    """``whsec_`` and 32 random bytes in base64, as the Standard Webhooks libraries take it."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def add(ctx: Context, *, url: str, events: list[str]) -> tuple[str, dict[str, Any]]:
    """A new endpoint and its signing secret (shown this once; stored sealed)."""
    url, events = check_url(url), check_events(events)
    secret = new_secret()
    now = ctx.clock.now()
    async with ctx.db.transaction() as tx:
        endpoint_id = await store.add(
            tx.conn,
            url=url,
            events=events,
            secret_sealed=ctx.vault.seal(secret.encode(), purpose=SECRET_PURPOSE),
            now=now,
        )
        [row] = await store.listed(tx.conn, endpoint_id)
    return secret, public(row)


async def listed(ctx: Context) -> list[dict[str, Any]]:
    async with ctx.db.read() as conn:
        return [public(row) for row in await store.listed(conn)]


async def remove(ctx: Context, endpoint_id: int) -> None:
    """Its events not yet delivered are dropped when their turn comes."""
    async with ctx.db.transaction() as tx:
        if not await store.remove(tx.conn, endpoint_id):
            raise not_found("Webhook")


def public(row: Record) -> dict[str, Any]:
    state = "disabled" if row.disabled_at else "failing" if row.failing_since else "active"
    return {
        "id": row.id,
        "url": row.url,
        "events": row.events,
        "state": state,
        "created_at": iso(row.created_at),
        "failing_since": iso(row.failing_since) if row.failing_since else None,
        "last_error": row.last_error,
        "disabled_at": iso(row.disabled_at) if row.disabled_at else None,
    }
