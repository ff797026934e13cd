from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictStr

from sessionward.schemas import NO_CONTROL
from sessionward.users.models import Email, Request

PasskeyName = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=NO_CONTROL)]


class PasskeyOut(BaseModel):
    id: int
    name: str
    created_at: str
    last_used_at: str | None
    transports: list[str]
    backed_up: bool


class PasskeyData(BaseModel):
    passkey: PasskeyOut


class PasskeyList(BaseModel):
    passkeys: list[PasskeyOut]


class RenameRequest(Request):
    name: PasskeyName


class LoginOptionsRequest(Request):
    email: Email | None = None
