"""FastAPI dependencies: the context, the caller's device, the authenticated principal."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from sessionward.apps import keys
from sessionward.apps.keys import KEY_PREFIX, Actor, Scope
from sessionward.context import Context
from sessionward.errors import AppError, ErrorCode, validation
from sessionward.sessions.devices import Device, parse_device
from sessionward.tokens import service as tokens
from sessionward.tokens.service import Principal
from sessionward.users.models import Role

MAX_TOKEN_LENGTH = 4096
BEARER = HTTPBearer(auto_error=False, description="An access token from login or refresh.")
# An operation's OpenAPI security, which FastAPI cannot see (``principal`` reads the header itself): ``app._document``
# adds it to the operations that depend on ``principal``; one that calls it declares it (``openapi_extra``).
SECURED: dict[str, Any] = {"security": [{BEARER.scheme_name: []}]}


# Dependencies are coroutines even when they never await: FastAPI runs a plain function in a worker thread.


async def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def device(request: Request) -> Device:
    # request.client is the peer, or the X-Forwarded-For client when the peer is a trusted proxy.
    ip = request.client.host if request.client else None
    return parse_device(request.headers.get("user-agent"), ip)


def bearer(request: Request) -> str:
    """The token of the request's one ``Authorization: Bearer`` header, or ``401``. Never from the query string."""
    given = request.headers.getlist("authorization")
    if len(given) > 1:  # ambiguous (RFC 6749 §5.2): never "the first wins"
        raise validation("authorization", "Send one Authorization header")
    scheme, _, token = (given[0] if given else "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise AppError(ErrorCode.INVALID_TOKEN, "Authentication required")
    return token


async def principal(request: Request) -> Principal:
    # The header is read here rather than by the bearer scheme as a sub-dependency: FastAPI solves a security
    # dependency anew on every request (a tenth of /me). The OpenAPI document still names it: see ``SECURED``.
    return await tokens.authenticate(await context(request), bearer(request))


async def admin(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    if caller.user.get("role") != Role.ADMIN:
        raise AppError(ErrorCode.FORBIDDEN, "Administrator role required")
    return caller


Ctx = Annotated[Context, Depends(context)]
Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
ClientDevice = Annotated[Device, Depends(device)]


def acting(scope: Scope) -> Any:
    """An app's backend with a service key of ``scope``, or an administrator's access token: the caller of the
    endpoints that act for users (a wrong scope or a non-admin ``403``, an unknown or revoked key ``401``)."""

    async def check(request: Request) -> Actor:
        token = bearer(request)
        ctx = await context(request)
        if token.startswith(KEY_PREFIX):
            key = await keys.authenticate(ctx, token)
            if scope not in key.scopes:
                raise AppError(ErrorCode.FORBIDDEN, f"This service key does not have the scope {scope}")
            return Actor(key=key)
        caller = await tokens.authenticate(ctx, token)
        if caller.user.get("role") != Role.ADMIN:
            raise AppError(ErrorCode.FORBIDDEN, "Administrator role or a service key required")
        return Actor(admin_id=caller.user_id)

    return Depends(check)
