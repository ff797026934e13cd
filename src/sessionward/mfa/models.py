from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator
from pydantic.json_schema import SkipJsonSchema

from sessionward.passkeys.models import AssertionCredential
from sessionward.schemas import NO_NUL
from sessionward.sessions.models import AccessOut
from sessionward.users.models import Password, Request

Code = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=NO_NUL)]
Challenge = Annotated[StrictStr, Field(min_length=10, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


def _exactly_one(*names: str) -> dict[str, Any]:
    """The schema's own statement of the validator below: one of these members, and no other of them."""
    return {"oneOf": [{"required": [name]} for name in names]}


class _OneFactor(Request):
    """Exactly one of the factors: a TOTP code, a recovery code, or a passkey's assertion (its JSON, as
    ``PublicKeyCredential.toJSON()`` gives it)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_exactly_one("totp", "recovery_code", "passkey"))

    # Absent when not given (never null in the schema: null is no factor).
    totp: Code | SkipJsonSchema[None] = None
    recovery_code: Code | SkipJsonSchema[None] = None
    passkey: AssertionCredential | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _one(self) -> _OneFactor:
        given = [name for name in self._choices() if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"Give exactly one of: {', '.join(self._choices())}")
        return self

    def _choices(self) -> tuple[str, ...]:
        return ("totp", "recovery_code", "passkey")


class LoginMfaRequest(_OneFactor):
    challenge: Challenge


class ReauthenticateRequest(_OneFactor):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra=_exactly_one("password", "totp", "recovery_code", "passkey")
    )

    password: Password | SkipJsonSchema[None] = None

    def _choices(self) -> tuple[str, ...]:
        return ("password", "totp", "recovery_code", "passkey")


class CodeRequest(Request):
    code: Code


FactorName = Literal["totp", "recovery_code", "passkey"]


class MfaRequired(BaseModel):
    mfa_required: Literal[True]
    challenge: str
    factors: list[FactorName]
    expires_in: int
    passkey_options: dict[str, Any] | None = None  # with "passkey": PublicKeyCredentialRequestOptions JSON


class TotpState(BaseModel):
    confirmed: bool
    created_at: str
    confirmed_at: str | None


class MfaStatus(BaseModel):
    factors: list[FactorName]
    totp: TotpState | None
    recovery_codes_left: int


class TotpEnrolment(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class Enrolled(BaseModel):
    recovery_codes: list[str]
    access: AccessOut


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class Reauthenticated(BaseModel):
    access: AccessOut
