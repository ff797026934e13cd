from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Request
from pydantic import WithJsonSchema

from sessionward.audit.service import EventType
from sessionward.context import Context
from sessionward.deps import Caller, ClientDevice, Ctx
from sessionward.errors import validation
from sessionward.http import JSON, ok
from sessionward.mfa.models import LoginMfaRequest, MfaRequired
from sessionward.passkeys.models import AssertionCredential
from sessionward.schemas import Message, Success, errors
from sessionward.sessions import service
from sessionward.sessions.models import DeviceList, LoginOut, LogoutRequest, RevokedCount
from sessionward.sessions.service import LoginResult
from sessionward.users.models import LoginRequest
from sessionward.web import cookies

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])

SessionPath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="64 hex characters")]


class RevokedMessage(Success[RevokedCount]):
    message: str


@router.post("/login", response_model=Success[LoginOut | MfaRequired], responses=errors(401, 403))
async def login(
    request: Request, body: LoginRequest, ctx: Ctx, device: ClientDevice, x_sessionward_client: cookies.WebClient = None
) -> JSON:
    """A session, or ``mfa_required`` with a challenge for ``/login/mfa`` when the user has a second factor."""
    if x_sessionward_client == cookies.WEB:
        cookies.check_origin(request, ctx.settings)  # login CSRF: before the password is even looked at
    result = await service.login(ctx, email=body.email, password=body.password, device=device)
    if isinstance(result, dict):
        return ok(result)
    return _signed_in(request, ctx, result, web=x_sessionward_client == cookies.WEB)


@router.post("/login/mfa", response_model=Success[LoginOut], responses=errors(403))
async def login_mfa(
    request: Request,
    body: LoginMfaRequest,
    ctx: Ctx,
    device: ClientDevice,
    x_sessionward_client: cookies.WebClient = None,
) -> JSON:
    """The second stage of a login: the challenge and a TOTP or recovery code (``403`` ``Invalid code``)."""
    if x_sessionward_client == cookies.WEB:
        cookies.check_origin(request, ctx.settings)
    result = await service.login_mfa(
        ctx,
        challenge=body.challenge,
        totp=body.totp,
        recovery_code=body.recovery_code,
        passkey=body.passkey.as_json() if body.passkey else None,
        device=device,
    )
    return _signed_in(request, ctx, result, web=x_sessionward_client == cookies.WEB)


@router.post("/passkeys/login", response_model=Success[LoginOut], responses=errors(403))
async def passkey_login(
    request: Request,
    body: AssertionCredential,
    ctx: Ctx,
    device: ClientDevice,
    x_sessionward_client: cookies.WebClient = None,
) -> JSON:
    """A sign-in with a passkey (``PublicKeyCredential.toJSON()`` of ``navigator.credentials.get()``), answering the
    options of ``/passkeys/login/options``."""
    if x_sessionward_client == cookies.WEB:
        cookies.check_origin(request, ctx.settings)
    result = await service.login_with_passkey(ctx, credential=body.as_json(), device=device)
    return _signed_in(request, ctx, result, web=x_sessionward_client == cookies.WEB)


def _signed_in(request: Request, ctx: Context, result: LoginResult, *, web: bool) -> JSON:
    """The login answer; in browser (cookie) mode the refresh token goes in a cookie instead of the body."""
    if not web:
        return ok(result.body())
    response = ok(result.body(refresh_in_body=False))
    first = cookies.Presented(result.tokens.refresh, result.session["id"])
    cookies.store(response, request, ctx.settings, refresh=first, max_age=result.tokens.refresh_expires_in)
    return response


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
    request: Request,
    caller: Caller,
    ctx: Ctx,
    # Optional, but never ``null`` (refused below): the schema says an object or nothing.
    body: Annotated[
        LogoutRequest | None, WithJsonSchema({"$ref": "#/components/schemas/LogoutRequest"}), Body()
    ] = None,
    x_sessionward_client: cookies.WebClient = None,
) -> JSON:
    if body is None and (await request.body()).strip():
        # A JSON ``null`` arrives here as no body; it is not an object, and must not mean ``{}``.
        raise validation("body", "Request body must be a JSON object")
    body = body or LogoutRequest()
    await service.logout(ctx, caller, session_id=body.session_id, everywhere=body.logout_all)
    response = ok(message="Successfully logged out")
    ended_here = body.logout_all or body.session_id in (None, caller.session_id)
    if x_sessionward_client == cookies.WEB and ended_here:
        cookies.clear(response, request, ctx.settings)  # this browser's session has ended
    return response
