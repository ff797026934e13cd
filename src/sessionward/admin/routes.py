from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from sessionward.deps import Admin, Ctx
from sessionward.http import JSON, ok
from sessionward.schemas import Success, errors
from sessionward.sessions import service as sessions
from sessionward.sessions.models import AdminSessions
from sessionward.sessions.routes import RevokedMessage
from sessionward.webhooks import service as webhooks
from sessionward.webhooks.service import Event

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

UserPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/users/{user_id}/sessions", response_model=Success[AdminSessions], responses=errors(401, 403))
async def user_sessions(user_id: UserPath, ctx: Ctx, _: Admin) -> JSON:
    return ok({"sessions": await sessions.active_sessions(ctx, user_id=user_id)})


@router.delete("/users/{user_id}/sessions", response_model=RevokedMessage, responses=errors(401, 403))
async def revoke_user_sessions(user_id: UserPath, ctx: Ctx, caller: Admin) -> JSON:
    count = await sessions.admin_revoke_all(ctx, user_id=user_id, admin_id=caller.user_id)
    return ok({"revoked": count}, message=f"Revoked {count} sessions successfully")


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[StrictStr, Field(max_length=2000, pattern=webhooks.URL_PATTERN)]
    events: Annotated[list[Event], Field(min_length=1, max_length=len(Event))]


WebhookPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/webhooks", response_model=Success[dict[str, Any]], responses=errors(401, 403))
async def list_webhooks(ctx: Ctx, _: Admin) -> JSON:
    return ok({"webhooks": await webhooks.listed(ctx)})


@router.post("/webhooks", status_code=201, response_model=Success[dict[str, Any]], responses=errors(400, 401, 403))
async def add_webhook(body: NewWebhook, ctx: Ctx, _: Admin) -> JSON:
    """The signing secret (``whsec_...``) is in this answer only; it is stored sealed."""
    secret, endpoint = await webhooks.add(ctx, url=body.url, events=[event.value for event in body.events])
    return ok({"webhook": endpoint, "secret": secret}, status=201)


@router.delete("/webhooks/{webhook_id}", response_model=Success[None], responses=errors(401, 403, 404))
async def remove_webhook(webhook_id: WebhookPath, ctx: Ctx, _: Admin) -> JSON:
    await webhooks.remove(ctx, webhook_id)
    return ok(message="Webhook removed")
