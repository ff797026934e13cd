from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased; syntax only, no deliverability look-up."""
    value = value.strip().lower()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError("Email is not a valid email address") from exc
    return value


Email = Annotated[StrictStr, Field(max_length=320), AfterValidator(normalise_email)]
# Bounded before the policy check so a huge body never reaches argon2.
Password = Annotated[StrictStr, Field(min_length=1, max_length=4096)]


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RegisterRequest(Request):
    email: Email
    password: Password
    name: Annotated[StrictStr, Field(max_length=200)] | None = None


class LoginRequest(Request):
    email: Annotated[StrictStr, Field(min_length=1, max_length=320)]
    password: Password


class PasswordChangeRequest(Request):
    current_password: Password
    new_password: Password


class DeleteAccountRequest(Request):
    password: Password


class UserOut(BaseModel):
    id: int
    email: str
    name: str | None
    role: Role
    email_verified_at: datetime | None
    created_at: datetime
