"""CORS for the exact origins of ``CORS_ALLOWED_ORIGINS`` (API.md "Cross-origin front ends").

Not Starlette's ``CORSMiddleware``: it adds ``Access-Control-Allow-Credentials`` to the answers of *every*
origin and answers an unlisted origin's preflight with a plain-text 400 carrying CORS headers, while here an
unlisted origin gets no CORS header at all (its preflight falls through to the API's own ``405`` envelope).
Installed only when the list is not empty, so the default costs the hot paths nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = b"GET, POST, PATCH, DELETE"
HEADERS = b"authorization, content-type, x-sessionward-client, dpop"
EXPOSED = b"retry-after, www-authenticate"  # what a client reads to back off or to tell a 401 apart
MAX_AGE = b"600"


class Cors:
    """Grants the listed origins credentialed requests; every other request passes through untouched."""

    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = frozenset(origin.encode("latin-1") for origin in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _origin(scope) if scope["type"] == "http" else None
        if origin is None or origin not in self.origins:
            await self.app(scope, receive, send)
        elif scope["method"] == "OPTIONS" and _is_preflight(scope):
            await _preflight(origin, send)
        else:
            await self.app(scope, receive, _granting(origin, send))


def _origin(scope: Scope) -> bytes | None:
    for key, value in scope["headers"]:
        if key == b"origin":
            return bytes(value).lower()
    return None


def _is_preflight(scope: Scope) -> bool:
    return any(key == b"access-control-request-method" for key, _ in scope["headers"])


def _grant(origin: bytes, vary: bytes = b"Origin") -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", vary),
    ]


async def _preflight(origin: bytes, send: Send) -> None:
    headers = [
        *_grant(origin),
        (b"access-control-allow-methods", METHODS),
        (b"access-control-allow-headers", HEADERS),
        (b"access-control-max-age", MAX_AGE),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _granting(origin: bytes, send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            kept = [(key, value) for key, value in headers if key.lower() != b"vary"]
            vary = b", ".join([*(value for key, value in headers if key.lower() == b"vary"), b"Origin"])
            message["headers"] = [*kept, *_grant(origin, vary), (b"access-control-expose-headers", EXPOSED)]
        await send(message)

    return wrapped
