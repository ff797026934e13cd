from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request

from sessionward import deps
from sessionward.deps import ClientDevice, Ctx
from sessionward.errors import AppError, invalid_token, validation
from sessionward.http import JSON, JSONBodyRoute, failure, ok
from sessionward.schemas import Message, Success, errors
from sessionward.sessions.models import TokensOut
from sessionward.tokens import service
from sessionward.tokens.models import Jwks, RefreshRequest
from sessionward.web import cookies

router = APIRouter(tags=["tokens"])

FORM_BODY = {  # RFC 7009 and RFC 7662: a token, form-encoded
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": {"type": "string", "minLength": 1, "maxLength": 4096},
                    "token_type_hint": {
                        "type": "string",
                        "description": "`access_token` or `refresh_token`; any other value is ignored (RFC 7009 §2.2)",
                    },
                },
                # Other parameters are ignored (RFC 6749 §3.2), but at most 10 fields are read at all.
                "additionalProperties": {"type": "string"},
                "maxProperties": 10,
            }
        }
    },
}


async def refresh_from_cookies(request: Request, ctx: Ctx, device: ClientDevice) -> JSON:
    """Browser mode: the refresh token and session id come from the cookies, the successor goes back into them."""
    cookies.check_origin(request, ctx.settings)
    settings = ctx.settings
    presented = cookies.read(request, settings)
    try:
        if presented is None:
            raise invalid_token()
        pair = await service.refresh(
            ctx, presented=presented.refresh_token, session_id=presented.session_id, device=device
        )
    except AppError as exc:
        if exc.status != 401:
            raise
        refused = failure(exc)  # a dead session's cookies are of no further use: the browser drops them
        cookies.clear(refused, request, settings)
        return refused
    response = ok(pair.body(refresh_in_body=False))
    rotated = cookies.Presented(pair.refresh, presented.session_id)
    cookies.store(response, request, settings, refresh=rotated, max_age=pair.refresh_expires_in)
    return response


# Registered first, matched only with `X-Sessionward-Client: web`: JSON clients reach the route below, whose
# signature (a required body) and answers are exactly those of before browser mode; they pay one header scan.
router.add_api_route(
    "/api/v1/auth/refresh",
    refresh_from_cookies,
    methods=["POST"],
    include_in_schema=False,
    route_class_override=cookies.BrowserRoute,
)


class _RefreshRoute(JSONBodyRoute):
    model = RefreshRequest


async def refresh(body: RefreshRequest, request: Request) -> JSON:
    # A hot path: the context and the device are read here, not solved as FastAPI dependencies.
    ctx, device = await deps.context(request), await deps.device(request)
    pair = await service.refresh(ctx, presented=body.refresh_token, session_id=body.session_id, device=device)
    return ok(pair.body())


router.add_api_route(
    "/api/v1/auth/refresh",
    refresh,
    methods=["POST"],
    response_model=Success[TokensOut],
    responses=errors(401, 403),
    openapi_extra=cookies.OPENAPI_OPTIONAL_BODY,
    route_class_override=_RefreshRoute,
)


async def token_form(request: Request) -> tuple[str, str | None]:
    """The ``token`` and ``token_type_hint`` of a form-encoded body (RFC 7009 §2.1, RFC 7662 §2.1)."""
    try:
        form = parse_qs((await request.body()).decode(), strict_parsing=False, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise validation("token", "Body must be form-encoded, with at most 10 fields") from None
    token = (form.get("token") or [""])[0]
    hints = form.get("token_type_hint")
    if not token or len(token) > 4096:
        raise validation("token", "Token is required")
    return token, hints[0] if hints else None


@router.post(
    "/api/v1/auth/revoke", response_model=Message, responses=errors(), openapi_extra={"requestBody": FORM_BODY}
)
async def revoke(request: Request, ctx: Ctx) -> JSON:
    """RFC 7009 token revocation: possession of the token is the authorisation."""
    token, hint = await token_form(request)
    await service.revoke_presented(ctx, token=token, hint=hint)
    return ok(message="Token revoked")


@router.get("/.well-known/jwks.json", response_model=Jwks)
async def jwks(ctx: Ctx) -> JSON:
    return JSON(ctx.access.keys.current(now=ctx.clock.now()).jwks(), headers={"Cache-Control": "public, max-age=300"})
