from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, StrictBool, StrictStr, WithJsonSchema

from sessionward.schemas import NO_CONTROL, NO_NUL
from sessionward.users.hashes import HashFormat, format_of, identify


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


# --------------------------------------------------------------------------- import (apps/importing.py)


# RFC 5322 §3.2.3 dot-atom of ASCII atext, lower-cased: a local part email_validator accepts as it is.
_ASCII_DOT_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EMAIL_MAX_LENGTH = 254  # RFC 5321 §4.5.3.1.3 by way of RFC 3696 errata, as email_validator checks it


@lru_cache(maxsize=4096)
def _domain_is_valid(domain: str) -> bool:
    try:
        normalise_email(f"a@{domain}")
    except ValueError:
        return False
    return True


def normalise_imported_email(value: str) -> str:
    """``normalise_email``, quicker for the usual address (an ASCII dot-atom before the ``@``, a domain seen
    before): email_validator checks each domain once, not once per user. Any other address takes the full path."""
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    usual = at and len(address) <= _EMAIL_MAX_LENGTH and domain.isascii() and _ASCII_DOT_ATOM.fullmatch(local)
    return address if usual and _domain_is_valid(domain) else normalise_email(address)


def _known_hash(value: str) -> str:
    identify(value)  # UnsupportedHash is a ValueError: pydantic reports its message
    return value


def _instant(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date and time")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an ISO 8601 date and time") from exc
    # Without an offset, a time is taken as UTC (what exports from databases mostly mean).
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


class ImportedUser(BaseModel):
    """One line of the import file (API.md "Existing apps"); other keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    email: Annotated[StrictStr, Field(max_length=320), AfterValidator(normalise_imported_email)]
    password_hash: Annotated[StrictStr, Field(max_length=1024, repr=False), AfterValidator(_known_hash)]
    name: Annotated[StrictStr, Field(max_length=200, pattern=NO_NUL)] | None = None
    role: Role = Role.USER
    email_verified: StrictBool = False
    created_at: Annotated[datetime, PlainValidator(_instant)] | None = None

    @property
    def hash_format(self) -> HashFormat:
        return format_of(self.password_hash)
