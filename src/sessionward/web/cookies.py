"""Browser (cookie) mode: the refresh token lives in an ``HttpOnly`` cookie the page's JavaScript never sees.

Per the OWASP Session Management cheat sheet and the IETF's OAuth 2.0 for Browser-Based Applications
(a "token-mediating backend" that is the authorization server itself): the refresh token and its session id go
into ``HttpOnly; Secure; SameSite=Strict`` cookies scoped to the one path that reads them, and the access token
stays in the page's memory. A request opts in with ``X-Sessionward-Client: web``; without that header every
endpoint answers exactly as before (JSON clients keep the refresh token in the body).

CSRF (OWASP CSRF cheat sheet): a cookie is only ever *read* on a request that carries the custom header, which a
cross-site page cannot send without a CORS preflight that only ``CORS_ALLOWED_ORIGINS`` are granted; ``Origin``
(when present) must be this service's own origin or a listed one, and without ``Origin`` ``Sec-Fetch-Site`` (when
present) must be ``same-origin``; and the cookies are ``SameSite=Strict`` (``COOKIE_SAMESITE``) on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header
from fastapi.routing import APIRoute
from pydantic import WithJsonSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from sessionward.config import Environment, Settings
from sessionward.errors import AppError, ErrorCode

HEADER = "x-sessionward-client"
# Only /refresh reads them; a narrower path than /api/v1/auth keeps them off every other request.
PATH = "/api/v1/auth/refresh"
REFRESH = "sessionward-refresh"
SESSION = "sessionward-session"
# RFC 6265bis §4.1.3.1: "__Secure-" makes the browser refuse the cookie unless it is Secure and set over https.
# "__Host-" would need Path=/, which would send the refresh token with every request to this origin.
SECURE_PREFIX = "__Secure-"
_LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}
_VALUE_LENGTH = range(10, 513)  # the body's limits (RefreshRequest)

WEB = "web"
_DESCRIPTION = (
    "`web`: browser mode. The refresh token and session id travel in HttpOnly cookies (set by login and refresh, "
    "read by refresh, cleared by logout) instead of the JSON body, and the request's Origin must be this "
    "service's own. Any other value, or none, is the JSON mode."
)
# Not an enum: any other value is valid and means JSON mode (a schema fuzzer must not expect it refused).
WebClient = Annotated[
    str | None, WithJsonSchema({"type": "string", "examples": [WEB]}), Header(description=_DESCRIPTION)
]
# /refresh documents both modes on its JSON route: the body is required there, absent in browser mode.
OPENAPI_OPTIONAL_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "description": _DESCRIPTION,
            "schema": {"type": "string", "examples": [WEB]},
        }
    ],
    "requestBody": {"required": False, "description": "Required, unless `X-Sessionward-Client: web`."},
}
_HEADER_BYTES = HEADER.encode()
_WEB_BYTES = WEB.encode()


class BrowserRoute(APIRoute):
    """A route that only requests with ``X-Sessionward-Client: web`` match; others fall through to the next."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and any(k == _HEADER_BYTES and v == _WEB_BYTES for k, v in scope["headers"]):
            return match, child
        return Match.NONE, {}


@dataclass(frozen=True, slots=True)
class Presented:
    refresh_token: str
    session_id: str


def _relaxed(request: Request, settings: Settings) -> bool:
    """Plain http to the loopback in development (``make run``) is the one place without Secure and prefix
    (never with ``SameSite=None``, which browsers refuse without Secure)."""
    return (
        settings.env is Environment.DEVELOPMENT
        and settings.cookie_samesite != "none"
        and request.url.scheme == "http"
        and (request.url.hostname or "") in _LOOPBACK
    )


def _names(request: Request, settings: Settings) -> tuple[str, str, bool]:
    if _relaxed(request, settings):
        return REFRESH, SESSION, False
    return SECURE_PREFIX + REFRESH, SECURE_PREFIX + SESSION, True


def check_origin(request: Request, settings: Settings) -> None:
    """``403`` for a browser request that another site made (or tried to make) on the user's behalf: only this
    service's own origin and the listed ones (exactly: never a suffix, never ``null``) may use cookie mode."""
    headers = request.headers
    origin = (headers.get("origin") or "").lower() or None
    site = headers.get("sec-fetch-site")
    own = f"{request.url.scheme}://{headers.get('host', '')}".lower()
    if origin is not None and origin in settings.cors_allowed_origins:
        return  # a listed front end: cross-origin (and maybe cross-site) by design
    if (origin is not None and origin != own) or (site is not None and site != "same-origin"):
        raise AppError(ErrorCode.FORBIDDEN, "Cross-origin request refused")


def read(request: Request, settings: Settings) -> Presented | None:
    refresh_name, session_name, _ = _names(request, settings)
    token = request.cookies.get(refresh_name, "")
    session_id = request.cookies.get(session_name, "")
    if len(token) not in _VALUE_LENGTH or len(session_id) not in _VALUE_LENGTH or "\x00" in session_id:
        return None  # NUL: never a session id (and PostgreSQL text cannot hold it)
    return Presented(token, session_id)


def store(response: Response, request: Request, settings: Settings, *, refresh: Presented, max_age: int) -> None:
    """Both cookies live exactly as long as the refresh token (its ``expires_in``)."""
    refresh_name, session_name, secure = _names(request, settings)
    for name, value in ((refresh_name, refresh.refresh_token), (session_name, refresh.session_id)):
        _set(response, name, value, max_age=max_age, secure=secure, settings=settings)


def clear(response: Response, request: Request, settings: Settings) -> None:
    refresh_name, session_name, secure = _names(request, settings)
    for name in (refresh_name, session_name):
        _set(response, name, "", max_age=0, secure=secure, settings=settings)


def _set(response: Response, name: str, value: str, *, max_age: int, secure: bool, settings: Settings) -> None:
    """``COOKIE_DOMAIN`` shares the cookies with sibling subdomains; ``SameSite=None`` cookies are partitioned
    (CHIPS), so a front end on another site gets its own jar rather than a third-party cookie."""
    samesite = settings.cookie_samesite
    expires = 0 if max_age == 0 else None
    response.set_cookie(
        name, value, max_age, expires, PATH, settings.cookie_domain, secure, httponly=True, samesite=samesite
    )
    if samesite == "none":  # Starlette writes Partitioned only on Python 3.14+
        key, header = response.raw_headers[-1]
        response.raw_headers[-1] = (key, header + b"; Partitioned")
