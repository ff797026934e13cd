"""Access tokens checked in your own ASGI app: a plain ASGI middleware, and a FastAPI dependency.

Both take an :class:`AccessTokenVerifier` (with ``revocations=`` for revocations within a second) and give the
route the verified :class:`AccessTokenClaims`. A token refused is a ``401`` with ``WWW-Authenticate: Bearer``;
a revocation stream down past its ``max_stale`` (failing closed) a ``503``.
"""

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from sessionward_client._errors import InvalidAccessToken, ServiceUnavailable
from sessionward_client._verify import AccessTokenClaims, AccessTokenVerifier

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
STATE_KEY = "sessionward"


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class AccessTokenMiddleware:
    """Every HTTP request (but the ``exempt`` paths) needs a valid access token; the claims are put in
    ``scope["state"]["sessionward"]`` (Starlette and FastAPI: ``request.state.sessionward``)."""

    def __init__(self, app: ASGIApp, verifier: AccessTokenVerifier, *, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt = frozenset(exempt)

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        try:
            if token is None:
                raise InvalidAccessToken("Authentication required")
            claims = await self.verifier.averify_access_token(token)
        except InvalidAccessToken:
            await _answer(send, 401, b'{"message":"Invalid or expired token"}', [(b"www-authenticate", b"Bearer")])
            return
        except ServiceUnavailable:
            await _answer(send, 503, b'{"message":"Cannot check tokens right now"}', [(b"retry-after", b"1")])
            return
        scope.setdefault("state", {})[STATE_KEY] = claims
        await self.app(scope, receive, send)


async def _answer(
    send: Callable[[Any], Awaitable[None]], status: int, body: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def access_token_dependency(verifier: AccessTokenVerifier) -> Callable[..., Awaitable[AccessTokenClaims]]:
    """A FastAPI dependency: ``claims: Annotated[AccessTokenClaims, Depends(access_token_dependency(verifier))]``."""
    from fastapi import HTTPException, Request  # FastAPI is the app's, not a dependency of this package

    async def dependency(request: Request) -> AccessTokenClaims:
        token = bearer_token(request.headers.get("authorization"))
        try:
            if token is None:
                raise InvalidAccessToken("Authentication required")
            return await verifier.averify_access_token(token)
        except InvalidAccessToken:
            raise HTTPException(401, "Invalid or expired token", headers={"WWW-Authenticate": "Bearer"}) from None
        except ServiceUnavailable:
            raise HTTPException(503, "Cannot check tokens right now", headers={"Retry-After": "1"}) from None

    return dependency
