"""One error base with a closed list of codes, translated to the API envelope at the boundary."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    VALIDATION = "validation"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_TOKEN = "invalid_token"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION: 400,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
}


class AppError(Exception):
    """An error the client is told about. ``message`` is safe to show: never a token, hash or SQL."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        errors: list[dict[str, str]] | None = None,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors
        self.retry_after = retry_after
        self.extra = extra  # more members of the body, for a client to act on (``step_up_required``)

    @property
    def status(self) -> int:
        return STATUS[self.code]


def invalid_token() -> AppError:
    """Every token failure looks the same to the caller (expired, revoked, reused, unknown)."""
    return AppError(ErrorCode.INVALID_TOKEN, "Invalid or expired token")


def not_found(what: str) -> AppError:
    return AppError(ErrorCode.NOT_FOUND, f"{what} not found")


def unavailable() -> AppError:
    return AppError(ErrorCode.UNAVAILABLE, "Service temporarily unavailable, please retry", retry_after=2)


def validation(field: str, message: str) -> AppError:
    return AppError(ErrorCode.VALIDATION, message, errors=[{"field": field, "message": message}])
