from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request

from sessionward.deps import ClientDevice, Ctx
from sessionward.errors import validation
from sessionward.http import JSON, ok
from sessionward.schemas import Message, Success, errors
from sessionward.sessions.models import TokensOut
from sessionward.tokens import service
from sessionward.tokens.models import Jwks, RefreshRequest

router = APIRouter(tags=["tokens"])

_FORM = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": {"type": "string", "minLength": 1, "maxLength": 4096},
                    "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
                },
            }
        }
    },
}


@router.post("/api/v1/auth/refresh", response_model=Success[TokensOut], responses=errors(401))
async def refresh(body: RefreshRequest, ctx: Ctx, device: ClientDevice) -> JSON:
    pair = await service.refresh(ctx, presented=body.refresh_token, session_id=body.session_id, device=device)
    return ok(pair.body())


@router.post("/api/v1/auth/revoke", response_model=Message, responses=errors(), openapi_extra={"requestBody": _FORM})
async def revoke(request: Request, ctx: Ctx) -> JSON:
    """RFC 7009 token revocation: possession of the token is the authorisation."""
    try:
        form = parse_qs((await request.body()).decode(), strict_parsing=False, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise validation("token", "Body must be form-encoded") from None
    token = (form.get("token") or [""])[0]
    hints = form.get("token_type_hint")
    hint = hints[0] if hints else None
    if not token or len(token) > 4096:
        raise validation("token", "Token is required")
    await service.revoke_presented(ctx, token=token, hint=hint)
    return ok(message="Token revoked")


@router.get("/.well-known/jwks.json", response_model=Jwks)
async def jwks(ctx: Ctx) -> JSON:
    return JSON(ctx.access.keys.current(now=ctx.clock.now()).jwks(), headers={"Cache-Control": "public, max-age=300"})
