"""Response shapes for the OpenAPI schema (responses are built as plain dicts on the hot paths)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")

# PostgreSQL text cannot hold U+0000, which JSON can carry escaped: refused as input wherever a string reaches
# the database, on either backend, so SQLite and PostgreSQL answer alike (a 400, never a 500).
NO_NUL = r"^[^\x00]*$"
# A name that goes into mails: no line breaks or other control characters (no header injection, no forged lines).
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


class Success(BaseModel, Generic[T]):
    status: Literal["success"]
    data: T


class Message(BaseModel):
    status: Literal["success"]
    message: str


class FieldError(BaseModel):
    field: str
    message: str


class Failure(BaseModel):
    status: Literal["fail", "error"]
    message: str
    errors: list[FieldError] | None = None
    code: Literal["step_up_required"] | None = None  # with a 403: authenticate again (``/reauthenticate``) first
    aal: Literal["aal1", "aal2"] | None = None  # with ``step_up_required``: the level needed
    max_age: int | None = None  # with ``step_up_required``: how recent, in seconds (``STEP_UP_MAX_AGE``)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error statuses an operation may answer (plus the ones every one may)."""
    always = (400, 413, 415, 429, 503)
    return {code: {"model": Failure} for code in sorted({*codes, *always})}
