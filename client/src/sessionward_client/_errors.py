"""Typed errors, keyed by the server's answers (status code and the endpoint that gave it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx

#: Which kind of call an answer belongs to: a 401 means different things on each.
CallKind = Literal["login", "refresh", "other"]


class SessionwardError(Exception):
    """Base of every error this package raises about an answer of the service (or its absence).

    ``status`` is the HTTP status of the answer (``None`` when there was none, e.g. not signed in) and
    ``message`` the server's human sentence, safe to show to a user.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class NotSignedIn(SessionwardError):
    """There are no tokens in the store: call ``login`` first."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a 400 answer's ``errors`` list."""

    field: str
    message: str


class ValidationFailed(SessionwardError):
    """400: the request was refused as invalid; ``errors`` says which field and why."""

    def __init__(self, message: str, *, status: int | None = 400, errors: list[FieldError] | None = None) -> None:
        super().__init__(message, status=status)
        self.errors: list[FieldError] = errors or []


class Unauthorized(SessionwardError):
    """401: the service does not accept the presented credentials or token."""


class InvalidCredentials(Unauthorized):
    """401 on login: wrong email or password (the server does not say which)."""


class SessionRevoked(Unauthorized):
    """The session is gone (401 on refresh): logged out, revoked, expired, or its refresh token was reused.

    The tokens of the session are removed from the store when this is raised; sign in again.
    """


class Forbidden(SessionwardError):
    """403: e.g. wrong current password, unverified email, registration disabled, not an admin."""


class StepUpRequired(Forbidden):
    """403 ``step_up_required``: a sensitive action needs a recent sign-in of level ``aal`` first: call
    ``reauthenticate`` (with the second factor when ``aal`` is ``"aal2"``), then try again."""

    def __init__(self, message: str, *, status: int | None = 403, aal: str = "aal1") -> None:
        super().__init__(message, status=status)
        self.aal = aal


class NotFound(SessionwardError):
    """404: e.g. a session that does not exist or is not the caller's."""


class Conflict(SessionwardError):
    """409: e.g. an account with that email already exists."""


class RateLimited(SessionwardError):
    """429: too many requests; ``retry_after`` is the server's ``Retry-After`` in seconds (``None`` if absent)."""

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ServerError(SessionwardError):
    """5xx: the service failed; the message is generic by design."""


class ServiceUnavailable(ServerError):
    """503: a backing service (the database) is unreachable; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, status: int | None = 503, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class InvalidAccessToken(SessionwardError):
    """``verify_access_token`` refused the token (bad signature, expired, wrong issuer or audience, unknown key...)."""


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds form; a date or garbage gives ``None``)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _body(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_from_response(response: httpx.Response, *, kind: CallKind = "other") -> SessionwardError:
    """The typed error for a non-2xx answer of the service."""
    body = _body(response)
    message = body.get("message")
    text = message if isinstance(message, str) and message else response.reason_phrase or "Request failed"
    status = response.status_code
    if status == 400:
        raw = body.get("errors")
        errors = [
            FieldError(str(item.get("field", "")), str(item.get("message", "")))
            for item in (raw if isinstance(raw, list) else [])
            if isinstance(item, dict)
        ]
        return ValidationFailed(text, status=status, errors=errors)
    if status == 401:
        if kind == "login":
            return InvalidCredentials(text, status=status)
        if kind == "refresh":
            return SessionRevoked(text, status=status)
        return Unauthorized(text, status=status)
    if status == 403 and body.get("code") == "step_up_required":
        aal = body.get("aal")
        return StepUpRequired(text, status=status, aal=aal if isinstance(aal, str) else "aal1")
    simple: dict[int, type[SessionwardError]] = {403: Forbidden, 404: NotFound, 409: Conflict}
    if status in simple:
        return simple[status](text, status=status)
    if status == 429:
        return RateLimited(text, status=status, retry_after=retry_after(response))
    if status == 503:
        return ServiceUnavailable(text, status=status, retry_after=retry_after(response))
    if status >= 500:
        return ServerError(text, status=status)
    return SessionwardError(text, status=status)
