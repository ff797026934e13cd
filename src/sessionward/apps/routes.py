from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, WithJsonSchema
from sse_starlette import EventSourceResponse, ServerSentEvent

from sessionward import deps
from sessionward.apps import service
from sessionward.apps.keys import Actor, Scope
from sessionward.deps import Ctx
from sessionward.http import JSON, ok
from sessionward.schemas import NO_CONTROL, NO_NUL, Success, errors
from sessionward.sessions.devices import parse_device
from sessionward.tokens import service as tokens
from sessionward.tokens import stream
from sessionward.tokens.routes import FORM_BODY, token_form
from sessionward.users.models import Email, Role
from sessionward.users.routes import UserData

router = APIRouter(tags=["existing apps"])
UserPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


class TrustedSignIn(BaseModel):
    """The device the app's user signed in on, as the app saw it."""

    model_config = ConfigDict(extra="forbid")
    user_agent: Annotated[StrictStr, Field(max_length=1024, pattern=NO_NUL)] | None = None
    ip: (
        Annotated[
            StrictStr,
            Field(max_length=45),
            AfterValidator(_ip),
            WithJsonSchema({"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}),
        ]
        | None
    ) = None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: Annotated[StrictStr, Field(max_length=200, pattern=NO_CONTROL)] | None = None
    role: Role = Role.USER
    email_verified: StrictBool = False


class Introspection(BaseModel):
    active: bool
    sub: str | None = None
    sid: str | None = None
    iat: int | None = None
    exp: int | None = None
    aal: str | None = None
    token_type: str | None = None


Issuer = Annotated[Actor, deps.acting(Scope.SESSIONS_ISSUE)]
Writer = Annotated[Actor, deps.acting(Scope.USERS_WRITE)]
Introspector = Annotated[Actor, deps.acting(Scope.TOKENS_INTROSPECT)]


@router.post(
    "/api/v1/admin/users/{user_id}/sessions",
    response_model=Success[dict[str, Any]],
    responses=errors(401, 403, 404),
    openapi_extra=deps.SECURED,
)
async def trusted_sign_in(user_id: UserPath, body: TrustedSignIn, ctx: Ctx, actor: Issuer) -> JSON:
    """A session for a user the app authenticated itself (scope ``sessions:issue``, or an administrator)."""
    device = parse_device(body.user_agent, body.ip)
    result = await service.sign_in(ctx, actor, user_id=user_id, device=device)
    return ok(result.body())


@router.post(
    "/api/v1/admin/users",
    status_code=201,
    response_model=UserData,
    responses=errors(401, 403, 409),
    openapi_extra=deps.SECURED,
)
async def create_user(body: NewUser, ctx: Ctx, actor: Writer) -> JSON:
    """An account without a password (scope ``users:write``, or an administrator)."""
    user = await service.create_user(
        ctx, actor, email=body.email, name=body.name, role=body.role, verified=body.email_verified
    )
    return ok({"user": user}, status=201)


@router.post(
    "/api/v1/auth/introspect",
    response_model=Introspection,
    responses=errors(401, 403),
    openapi_extra={"requestBody": FORM_BODY, **deps.SECURED},
)
async def introspect(request: Request, ctx: Ctx, _: Introspector) -> JSON:
    """RFC 7662 (scope ``tokens:introspect``): the answer is the RFC's object itself, not in the envelope."""
    token, hint = await token_form(request)
    return JSON(await tokens.introspect(ctx, token=token, hint=hint), headers={"Cache-Control": "no-store"})


Reader = Annotated[Actor, deps.acting(Scope.SESSIONS_READ)]
_PING_SECONDS = 15
_SEND_TIMEOUT_SECONDS = 10  # a subscriber that takes no more data is dropped; it resumes with Last-Event-ID


@router.get(
    "/api/v1/auth/revocations",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(401, 403)},
    openapi_extra=deps.SECURED,
)
async def revocations(request: Request, ctx: Ctx, _: Reader) -> EventSourceResponse:
    """Server-Sent Events (scope ``sessions:read``): each session revocation as ``{"sid", "sub", "revoked_at",
    "until"}``; on connect, the entries not yet moot, or with ``Last-Event-ID`` what came since."""
    feed = stream.feed_of(ctx)
    subscription = feed.subscribe()  # first: what is revoked during the snapshot is not missed
    try:  # before the response starts: the database unreachable is a 503 in the envelope, not a broken stream
        snapshot = await feed.snapshot(stream.parse_cursor(request.headers.get("last-event-id")))
    except BaseException:
        feed.unsubscribe(subscription)
        raise

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            for entry in snapshot:
                yield _event(entry)
            while not subscription.dropped:
                yield _event(await subscription.queue.get())
        finally:
            feed.unsubscribe(subscription)

    return EventSourceResponse(
        events(), ping=_PING_SECONDS, send_timeout=_SEND_TIMEOUT_SECONDS, headers={"Cache-Control": "no-store"}
    )


def _event(entry: stream.Entry) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(entry.data()).decode(), id=entry.cursor, event="revocation")
