from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from sessionward.audit.service import events_of
from sessionward.deps import Caller, Ctx
from sessionward.http import JSON, ok
from sessionward.schemas import Success, errors

router = APIRouter(prefix="/api/v1/auth", tags=["events"])


class EventOut(BaseModel):
    id: int
    type: str
    at: str
    session_id: str | None
    ip_address: str | None
    device_info: dict[str, Any] | None
    details: dict[str, Any]


class Events(BaseModel):
    events: list[EventOut]


@router.get("/events", response_model=Success[Events], responses=errors(401))
async def events(
    caller: Caller,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,  # the id column's range (PostgreSQL int4)
) -> JSON:
    return ok({"events": await events_of(ctx.db, user_id=caller.user_id, limit=limit, before=before)})
