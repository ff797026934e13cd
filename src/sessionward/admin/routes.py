from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from sessionward.deps import Admin, Ctx
from sessionward.http import JSON, ok
from sessionward.schemas import Success, errors
from sessionward.sessions import service as sessions
from sessionward.sessions.models import AdminSessions
from sessionward.sessions.routes import RevokedMessage

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

UserPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/users/{user_id}/sessions", response_model=Success[AdminSessions], responses=errors(401, 403))
async def user_sessions(user_id: UserPath, ctx: Ctx, _: Admin) -> JSON:
    return ok({"sessions": await sessions.active_sessions(ctx, user_id=user_id)})


@router.delete("/users/{user_id}/sessions", response_model=RevokedMessage, responses=errors(401, 403))
async def revoke_user_sessions(user_id: UserPath, ctx: Ctx, caller: Admin) -> JSON:
    count = await sessions.admin_revoke_all(ctx, user_id=user_id, admin_id=caller.user_id)
    return ok({"revoked": count}, message=f"Revoked {count} sessions successfully")
