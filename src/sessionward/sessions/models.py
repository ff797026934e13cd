from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from pydantic.json_schema import SkipJsonSchema

from sessionward.schemas import NO_NUL
from sessionward.users.models import UserOut

SessionId = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="64 hex characters")]


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    session_id: Annotated[StrictStr, Field(min_length=10, max_length=128, pattern=NO_NUL)] | None = None
    logout_all: StrictBool = False


class DeviceInfo(BaseModel):
    fingerprint: str | None = None
    userAgent: str | None = None
    ip: str | None = None
    browser: str | None = None
    os: str | None = None
    device: str | None = None


class SessionOut(BaseModel):
    id: str
    device_info: DeviceInfo
    ip_address: str | None
    created_at: str
    last_activity: str
    expires_at: str
    is_current: bool
    aal: Literal["aal1", "aal2"]
    amr: list[str]
    auth_time: str


class DeviceList(BaseModel):
    current_session: SessionOut | None
    other_sessions: list[SessionOut]


class AccessOut(BaseModel):
    token: str
    expires_in: int
    type: str


class RefreshOut(BaseModel):
    # Absent (never null) in browser mode, where the token travels in an HttpOnly cookie instead.
    token: str | SkipJsonSchema[None] = Field(
        default=None, description="Absent when `X-Sessionward-Client: web` (the token is in a cookie)."
    )
    expires_in: int


class TokensOut(BaseModel):
    access: AccessOut
    refresh: RefreshOut


class NewSession(BaseModel):
    id: str
    expires_at: str
    device_info: DeviceInfo


class LoginOut(BaseModel):
    user: UserOut
    tokens: TokensOut
    session: NewSession


class RevokedCount(BaseModel):
    revoked: int


class AdminSessions(BaseModel):
    sessions: list[SessionOut]
