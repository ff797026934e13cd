from __future__ import annotations

from fastapi import APIRouter

from sessionward.deps import Caller, ClientDevice, Ctx
from sessionward.http import JSON, ok
from sessionward.mail import service
from sessionward.schemas import Message, errors
from sessionward.users.models import ChangeEmailRequest, EmailRequest, ResetPasswordRequest, TokenRequest
from sessionward.users.routes import UserData

router = APIRouter(prefix="/api/v1/auth", tags=["account email"])


@router.post("/email/verification", status_code=202, response_model=Message, responses=errors())
async def request_verification(body: EmailRequest, ctx: Ctx, device: ClientDevice) -> JSON:
    """Always ``202``, the same answer whether or not the address has an account or is verified already."""
    await service.request_verification(ctx, email=body.email, device=device)
    return ok(message=service.ON_ITS_WAY, status=202)


@router.post("/email/verify", response_model=UserData, responses=errors())
async def verify_email(body: TokenRequest, ctx: Ctx) -> JSON:
    return ok({"user": await service.verify_email(ctx, token=body.token)})


@router.post("/password/forgot", status_code=202, response_model=Message, responses=errors())
async def forgot_password(body: EmailRequest, ctx: Ctx, device: ClientDevice) -> JSON:
    """Always ``202``, the same answer whether or not the address has an account."""
    await service.forgot_password(ctx, email=body.email, device=device)
    return ok(message=service.ON_ITS_WAY, status=202)


@router.post("/password/reset", response_model=Message, responses=errors())
async def reset_password(body: ResetPasswordRequest, ctx: Ctx, device: ClientDevice) -> JSON:
    await service.reset_password(ctx, token=body.token, new_password=body.new_password, device=device)
    return ok(message="Password reset; every device was signed out")


@router.post("/email/change", status_code=202, response_model=Message, responses=errors(401, 403, 409))
async def change_email(body: ChangeEmailRequest, caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    await service.change_email(ctx, caller, new_email=body.new_email, password=body.password, device=device)
    return ok(message="A confirmation was sent to the new address", status=202)


@router.post("/email/change/confirm", response_model=UserData, responses=errors(409))
async def confirm_email_change(body: TokenRequest, ctx: Ctx) -> JSON:
    return ok({"user": await service.confirm_email_change(ctx, token=body.token)})
