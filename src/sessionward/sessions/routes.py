from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Request

from sessionward.audit.service import EventType
from sessionward.deps import Caller, ClientDevice, Ctx
from sessionward.errors import validation
from sessionward.http import JSON, ok
from sessionward.schemas import Message, Success, errors
from sessionward.sessions import service
from sessionward.sessions.models import DeviceList, LoginOut, LogoutRequest, RevokedCount
from sessionward.users.models import LoginRequest

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])

SessionPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="64 hex characters")]


class RevokedMessage(Success[RevokedCount]):
    message: str


@router.post("/login", response_model=Success[LoginOut], responses=errors(401, 403))
async def login(body: LoginRequest, ctx: Ctx, device: ClientDevice) -> JSON:
    result = await service.login(ctx, email=body.email, password=body.password, device=device)
    return ok(result.body())


@router.get("/sessions", response_model=Success[DeviceList], responses=errors(401))
async def list_sessions(caller: Caller, ctx: Ctx, x_session_id: Annotated[str | None, Header()] = None) -> JSON:
    # API.md: a header that names no session of the caller is ignored, whatever it holds (never a 400).
    return ok(await service.device_list(ctx, caller, header_session=x_session_id))


@router.delete("/sessions/{session_id}", response_model=Message, responses=errors(401, 404))
async def revoke_session(session_id: SessionPath, caller: Caller, ctx: Ctx) -> JSON:
    await service.revoke_one(ctx, caller, session_id=session_id, event=EventType.SESSION_REVOKED)
    return ok(message="Session revoked successfully")


@router.delete("/sessions", response_model=RevokedMessage, responses=errors(401))
async def revoke_other_sessions(caller: Caller, ctx: Ctx) -> JSON:
    count = await service.revoke_others(ctx, caller)
    return ok({"revoked": count}, message=f"Revoked {count} sessions successfully")


@router.post("/logout", response_model=Message, responses=errors(401, 404))
async def logout(
    request: Request, caller: Caller, ctx: Ctx, body: Annotated[LogoutRequest | None, Body()] = None
) -> JSON:
    if body is None and (await request.body()).strip():
        # A JSON ``null`` arrives here as no body; it is not an object, and must not mean ``{}``.
        raise validation("body", "Request body must be a JSON object")
    body = body or LogoutRequest()
    await service.logout(ctx, caller, session_id=body.session_id, everywhere=body.logout_all)
    return ok(message="Successfully logged out")
