from __future__ import annotations

from fastapi import APIRouter

from sessionward.deps import Caller, ClientDevice, Ctx
from sessionward.http import JSON, ok
from sessionward.mfa import service
from sessionward.mfa.models import (
    CodeRequest,
    Enrolled,
    MfaStatus,
    Reauthenticated,
    ReauthenticateRequest,
    RecoveryCodes,
    TotpEnrolment,
)
from sessionward.schemas import Message, Success, errors

router = APIRouter(prefix="/api/v1/auth", tags=["stronger sign-in"])


@router.get("/mfa", response_model=Success[MfaStatus], responses=errors(401))
async def mfa_status(caller: Caller, ctx: Ctx) -> JSON:
    return ok(await service.status(ctx, caller))


@router.post("/mfa/totp", response_model=Success[TotpEnrolment], responses=errors(401, 403, 409))
async def start_totp(caller: Caller, ctx: Ctx) -> JSON:
    """A new authenticator secret (step-up), unconfirmed until ``/mfa/totp/confirm``."""
    return ok(await service.start_totp(ctx, caller))


@router.post("/mfa/totp/confirm", response_model=Success[Enrolled], responses=errors(401, 403, 409))
async def confirm_totp(body: CodeRequest, caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    """Turns two-step verification on; the recovery codes are in this answer only."""
    return ok(await service.confirm_totp(ctx, caller, code=body.code, device=device))


@router.delete("/mfa/totp", response_model=Message, responses=errors(401, 403, 404))
async def remove_totp(caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    await service.remove_totp(ctx, caller, device=device)
    return ok(message="Two-step verification is off")


@router.post("/mfa/recovery-codes", response_model=Success[RecoveryCodes], responses=errors(401, 403, 409))
async def new_recovery_codes(caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    """A new set of recovery codes (step-up); the old ones stop working."""
    return ok({"recovery_codes": await service.new_recovery_codes(ctx, caller, device=device)})


@router.post("/reauthenticate", response_model=Success[Reauthenticated], responses=errors(401, 403))
async def reauthenticate(body: ReauthenticateRequest, caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    """Confirm it's you: the session's authentication becomes recent (and of two factors with a second one)."""
    answer = await service.reauthenticate(
        ctx,
        caller,
        password=body.password,
        totp=body.totp,
        recovery_code=body.recovery_code,
        passkey=body.passkey.as_json() if body.passkey else None,
        device=device,
    )
    return ok(answer)
