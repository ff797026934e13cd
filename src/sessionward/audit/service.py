"""Security events: recorded in the transaction of the change they describe."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sessionward.audit import store
from sessionward.clock import iso
from sessionward.db import Database
from sessionward.sessions.devices import Device


class EventType(StrEnum):
    USER_REGISTERED = "user_registered"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    SESSION_REVOKED = "session_revoked"
    SESSION_EVICTED = "session_evicted"
    SESSIONS_REVOKED = "sessions_revoked"
    LOGOUT = "logout"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    DEVICE_MISMATCH = "device_mismatch"
    IP_CHANGED = "ip_changed"
    PASSWORD_CHANGED = "password_changed"
    TOKEN_REVOKED = "token_revoked"
    EMAIL_VERIFIED = "email_verified"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_RESET = "password_reset"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    USER_IMPORTED = "user_imported"
    SESSION_ISSUED = "session_issued"
    MFA_ENROLLED = "mfa_enrolled"
    MFA_REMOVED = "mfa_removed"
    MFA_FAILED = "mfa_failed"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    STEP_UP = "step_up"
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    PASSKEY_LOGIN = "passkey_login"
    PASSKEY_CLONE_SUSPECTED = "passkey_clone_suspected"


async def record(
    conn: AsyncConnection,
    *,
    user_id: int,
    type: EventType,
    now: datetime,
    session_id: str | None = None,
    device: Device | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await store.insert_event(
        conn,
        user_id=user_id,
        type=type.value,
        at=now,
        session_id=session_id,
        ip_address=device.ip if device else None,
        device_info=device.info() if device else None,
        details=details,
    )


async def record_many(
    conn: AsyncConnection, *, type: EventType, now: datetime, details_by_user: Mapping[int, dict[str, Any]]
) -> None:
    """One event per user, in one statement (a batch of imported users)."""
    rows = [{"user_id": user_id, "type": type.value, "at": now, "details": d} for user_id, d in details_by_user.items()]
    await store.insert_events(conn, rows)


async def events_of(db: Database, *, user_id: int, limit: int, before: int | None) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await store.list_events(conn, user_id=user_id, limit=limit, before=before)
    return [
        {
            "id": row.id,
            "type": row.type,
            "at": iso(row.at),
            "session_id": row.session_id,
            "ip_address": row.ip_address,
            "device_info": row.device_info,
            "details": row.details or {},
        }
        for row in rows
    ]
