from __future__ import annotations

from fastapi import APIRouter, Request

from sessionward import deps
from sessionward.deps import Caller, ClientDevice, Ctx
from sessionward.http import JSON, DirectRoute, ok
from sessionward.schemas import Message, Success, errors
from sessionward.sessions import service as sessions
from sessionward.users import service
from sessionward.users.models import DeleteAccountRequest, PasswordChangeRequest, RegisterRequest, UserOut
from sessionward.web import cookies

router = APIRouter(prefix="/api/v1/auth", tags=["account"])


class UserData(Success[dict[str, UserOut]]):
    """``data.user``."""


@router.post("/register", status_code=201, response_model=UserData, responses=errors(403, 409))
async def register(body: RegisterRequest, ctx: Ctx, device: ClientDevice) -> JSON:
    await ctx.limits.hit(ctx.limits.register, device.ip or "-")
    user = await service.register(ctx, email=body.email, password=body.password, name=body.name, device=device)
    return ok({"user": user}, status=201)


async def me(request: Request) -> JSON:
    # The hottest protected path: it finds its caller itself, and FastAPI calls it as it is (``DirectRoute``).
    caller = await deps.principal(request)
    return ok({"user": caller.user})


router.add_api_route(
    "/me",
    me,
    methods=["GET"],
    response_model=UserData,
    responses=errors(401),
    openapi_extra=deps.SECURED,
    route_class_override=DirectRoute,
)


@router.delete("/me", response_model=Message, responses=errors(401, 403))
async def delete_me(
    request: Request,
    body: DeleteAccountRequest,
    caller: Caller,
    ctx: Ctx,
    x_sessionward_client: cookies.WebClient = None,
) -> JSON:
    await sessions.delete_account(ctx, caller, password=body.password)
    response = ok(message="Account deleted")
    if x_sessionward_client == cookies.WEB:
        cookies.clear(response, request, ctx.settings)
    return response


@router.post("/password", response_model=Message, responses=errors(401, 403))
async def change_password(body: PasswordChangeRequest, caller: Caller, ctx: Ctx, device: ClientDevice) -> JSON:
    await sessions.change_password(ctx, caller, current=body.current_password, new=body.new_password, device=device)
    return ok(message="Password changed; other sessions were signed out")
