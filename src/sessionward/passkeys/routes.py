from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from sessionward.deps import Caller, ClientDevice, Ctx
from sessionward.http import JSON, ok
from sessionward.mfa import service as mfa
from sessionward.passkeys import service
from sessionward.passkeys.models import (
    LoginOptionsRequest,
    PasskeyData,
    PasskeyList,
    RegistrationCredential,
    RenameRequest,
)
from sessionward.schemas import Message, Success, errors

router = APIRouter(prefix="/api/v1/auth", tags=["stronger sign-in"])

# ``:int`` in the path: only digits reach these routes (``PATCH /passkeys/login`` is a 405, not a 400 here).
PasskeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Options = dict[str, Any]


@router.post("/passkeys/register/options", response_model=Success[Options], responses=errors(401, 403))
async def registration_options(caller: Caller, ctx: Ctx) -> JSON:
    """``PublicKeyCredentialCreationOptions`` JSON for ``navigator.credentials.create()`` (step-up)."""
    await mfa.require_step_up(ctx, caller)
    return ok(await service.registration_options(ctx, caller))


@router.post(
    "/passkeys/register", status_code=201, response_model=Success[PasskeyData], responses=errors(401, 403, 409)
)
async def register(body: RegistrationCredential, caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    """The credential (``PublicKeyCredential.toJSON()`` of ``navigator.credentials.create()``), and a ``name``."""
    passkey = await service.register(ctx, caller, credential=body.as_json(), name=body.name, device=device)
    return ok({"passkey": passkey}, status=201)


@router.get("/passkeys", response_model=Success[PasskeyList], responses=errors(401))
async def list_passkeys(caller: Caller, ctx: Ctx) -> JSON:
    return ok({"passkeys": await service.of_user(ctx, caller)})


@router.patch("/passkeys/{passkey_id:int}", response_model=Success[PasskeyData], responses=errors(401, 404))
async def rename(passkey_id: PasskeyId, body: RenameRequest, caller: Caller, ctx: Ctx) -> JSON:
    return ok({"passkey": await service.rename(ctx, caller, passkey_id=passkey_id, name=body.name)})


@router.delete("/passkeys/{passkey_id:int}", response_model=Message, responses=errors(401, 403, 404))
async def remove(passkey_id: PasskeyId, caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    await mfa.require_step_up(ctx, caller)
    await service.remove(ctx, caller, passkey_id=passkey_id, device=device)
    return ok(message="Passkey removed")


@router.post("/passkeys/login/options", response_model=Success[Options], responses=errors())
async def login_options(ctx: Ctx, body: LoginOptionsRequest | None = None) -> JSON:
    """``PublicKeyCredentialRequestOptions`` JSON for ``navigator.credentials.get()``; without an email, for any
    discoverable passkey."""
    return ok(await service.login_options(ctx, email=body.email if body else None))
