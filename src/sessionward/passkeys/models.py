from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from pydantic.json_schema import SkipJsonSchema

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


# WebAuthn's JSON (``PublicKeyCredential.toJSON()``): its shape is checked here (else 400); whether it verifies is
# py_webauthn's (else 403).
Base64Url = Annotated[StrictStr, Field(min_length=1, max_length=16_384, pattern=r"^[A-Za-z0-9_-]+$")]


class _Credential(BaseModel):
    model_config = ConfigDict(extra="allow")  # clientExtensionResults, authenticatorAttachment, ...

    id: Base64Url
    rawId: Base64Url
    type: Literal["public-key"]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"name"})


class AttestationResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    clientDataJSON: Base64Url
    attestationObject: Base64Url
    transports: (
        Annotated[list[Annotated[StrictStr, Field(max_length=32)]], Field(max_length=16)] | SkipJsonSchema[None]
    ) = None


class RegistrationCredential(_Credential):
    response: AttestationResponse
    name: PasskeyName | SkipJsonSchema[None] = None  # what the account page calls it


class AssertionResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    clientDataJSON: Base64Url
    authenticatorData: Base64Url
    signature: Base64Url
    userHandle: Base64Url | SkipJsonSchema[None] = None


class AssertionCredential(_Credential):
    response: AssertionResponse
