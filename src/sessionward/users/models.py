from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema

from sessionward.schemas import NO_CONTROL, NO_NUL


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased; syntax only, no deliverability look-up."""
    value = value.strip().lower()
    try:
        # Syntax only (API.md): no DNS, and test domains such as example.test are addresses too.
        validate_email(value, check_deliverability=False, test_environment=True, globally_deliverable=False)
    except EmailNotValidError as exc:
        raise ValueError("Email is not a valid email address") from exc
    return value


Email = Annotated[
    StrictStr, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(normalise_email)
]
# Bounded before the policy check so a huge body never reaches argon2.
Password = Annotated[StrictStr, Field(min_length=1, max_length=4096)]
# A password being set: the service checks the configured policy; the schema states the default one.
NewPassword = Annotated[
    Password,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 8,
            "maxLength": 128,
            "description": "PASSWORD_MIN_LENGTH to PASSWORD_MAX_LENGTH characters (by default 8 to 128)",
        }
    ),
]


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegisterRequest(Request):
    email: Email
    password: NewPassword
    name: Annotated[StrictStr, Field(max_length=200, pattern=NO_CONTROL)] | None = None


class LoginRequest(Request):
    email: Annotated[StrictStr, Field(min_length=1, max_length=320, pattern=NO_NUL)]
    password: Password


class PasswordChangeRequest(Request):
    current_password: Password
    new_password: NewPassword


class DeleteAccountRequest(Request):
    password: Password


class UserOut(BaseModel):
    id: int
    email: str
    name: str | None
    role: Role
    email_verified_at: datetime | None
    created_at: datetime


# A mailed link's token: 256 bits, URL-safe (43 characters); bounded so that nothing large is hashed.
MailToken = Annotated[StrictStr, Field(min_length=10, max_length=512, pattern=NO_NUL)]


class EmailRequest(Request):
    email: Email


class TokenRequest(Request):
    token: MailToken


class ResetPasswordRequest(Request):
    token: MailToken
    new_password: NewPassword


class ChangeEmailRequest(Request):
    new_email: Email
    password: Password
