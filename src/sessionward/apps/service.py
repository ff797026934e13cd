"""What an app's own backend does for its users: sign one in after its own login, make accounts without a
password. The caller is a service key of the right scope or an administrator (``deps.acting``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc

from sessionward.apps.keys import Actor
from sessionward.audit.service import EventType, record
from sessionward.context import Context
from sessionward.errors import AppError, ErrorCode, not_found
from sessionward.sessions import service as sessions
from sessionward.sessions.devices import Device
from sessionward.sessions.service import LoginResult
from sessionward.tokens.jwt import authenticated
from sessionward.users import service as users
from sessionward.users.models import Role


async def sign_in(ctx: Context, actor: Actor, *, user_id: int, device: Device) -> LoginResult:
    """A session for a user whom the app authenticated itself: the same cap, eviction and events as a login."""
    async with ctx.db.read() as conn:
        user = await users.find(conn, user_id=user_id)
    if user is None:
        raise not_found("User")
    # The app authenticated the user, by its own means: no method of ours to name (an empty ``amr``).
    strength = authenticated((), at=ctx.clock.now())
    return await sessions.open_session(
        ctx, user, device=device, event=EventType.SESSION_ISSUED, strength=strength, details=actor.details()
    )


async def create_user(
    ctx: Context, actor: Actor, *, email: str, name: str | None, role: Role, verified: bool
) -> dict[str, Any]:
    now = ctx.clock.now()
    try:
        async with ctx.db.transaction() as tx:
            row = await users.insert_passwordless(
                tx.conn, email=email, name=name, role=role, verified=verified, now=now
            )
            await record(tx.conn, user_id=row.id, type=EventType.USER_REGISTERED, now=now, details=actor.details())
    except sa_exc.IntegrityError as exc:
        raise AppError(ErrorCode.CONFLICT, "An account with this email already exists") from exc
    return users.public(row)
