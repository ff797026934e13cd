"""Accept sessionward access tokens in your own service: checked locally against the service's JWKS.

Needs the ``jwt`` extra (``pip install 'sessionward-client[jwt]'``) and a service that signs with an
asymmetric algorithm (``JWT_ALGORITHM=EdDSA`` or ``ES256``; with HS256 the JWKS is empty).

A local check proves the token was issued by the service and has not expired. Given ``revocations`` (a
:class:`RevocationSubscription`: the service's revocation stream, with a service key), it also refuses the tokens
of a session revoked since, within a second, with no call per request; without one, a logout or revocation is
seen only at ``exp`` (15 minutes by default).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import httpx

from sessionward_client._errors import InvalidAccessToken, ServiceUnavailable
from sessionward_client._revocations import RevocationSubscription

log = logging.getLogger("sessionward_client")

JWKS_PATH = "/.well-known/jwks.json"
_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]
_ASYMMETRIC = frozenset({"OKP", "EC", "RSA"})


def _jwt() -> ModuleType:
    try:
        import jwt  # optional dependency: imported when first needed
    except ImportError as exc:
        raise ImportError(
            "verify_access_token needs PyJWT with cryptography: pip install 'sessionward-client[jwt]'"
        ) from exc
    return jwt


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """A verified access token: who (``user_id``), which session (``session_id``), until when."""

    user_id: int
    session_id: str
    jti: str
    issuer: str
    issued_at: datetime
    expires_at: datetime
    claims: dict[str, Any] = field(repr=False)


class AccessTokenVerifier:
    """Verifies access tokens with the JWKS of the sessionward service at ``base_url`` (or ``jwks_url``).

    The key set is cached for ``cache_ttl`` seconds (or the answer's ``Cache-Control: max-age``) and
    fetched again at once when a token names an unknown ``kid`` (a key rotation), at most once every
    ``min_refetch_interval`` seconds so that made-up ``kid`` values cannot flood the service. If a
    refetch fails, the cached keys stay in use.
    """

    def __init__(
        self,
        base_url: str | httpx.URL | None = None,
        *,
        jwks_url: str | httpx.URL | None = None,
        issuer: str = "sessionward",
        audience: str = "sessionward",
        algorithms: Sequence[str] = ("EdDSA", "ES256"),
        leeway: float = 1.0,
        cache_ttl: float = 300.0,
        min_refetch_interval: float = 10.0,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        revocations: RevocationSubscription | None = None,
    ) -> None:
        if jwks_url is None:
            if base_url is None:
                raise ValueError("give base_url (the sessionward service) or jwks_url")
            jwks_url = str(base_url).rstrip("/") + JWKS_PATH
        if any(alg == "none" or alg.startswith("HS") for alg in algorithms):
            raise ValueError("only asymmetric algorithms can be verified with a public key set")
        self.jwks_url = str(jwks_url)
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.leeway = leeway
        self.cache_ttl = cache_ttl
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self._transport = transport
        self._async_transport = async_transport
        self._monotonic = monotonic
        self._keys: dict[str, Any] = {}  # kid -> jwt.PyJWK
        self._expires: float | None = None  # monotonic time the cached set goes stale
        self._refetched_at: float | None = None  # monotonic time of the last refetch for an unknown kid
        self._lock = threading.Lock()
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._async_lock: asyncio.Lock | None = None
        self.fetches = 0  #: how many times the key set was fetched (for tests and metrics)
        self.revocations = revocations

    # ----- verification -----------------------------------------------------------------------------

    def verify_access_token(self, token: str) -> AccessTokenClaims:
        """The claims of ``token``, or :class:`InvalidAccessToken`."""
        jwt = _jwt()
        header = self._header(jwt, token)
        kid = str(header["kid"])
        with self._lock:
            if self._should_fetch(kid):
                self._store(self._fetch_sync())
            key = self._keys.get(kid)
        return self._decode(jwt, token, header, key)

    async def averify_access_token(self, token: str) -> AccessTokenClaims:
        """``verify_access_token`` for async code: a key-set fetch does not block the event loop."""
        jwt = _jwt()
        header = self._header(jwt, token)
        kid = str(header["kid"])
        async with self._lock_for_loop():
            if self._should_fetch(kid):
                self._store(await self._fetch_async())
            key = self._keys.get(kid)
        return self._decode(jwt, token, header, key)

    __call__ = verify_access_token

    def _header(self, jwt: ModuleType, token: str) -> dict[str, Any]:
        try:
            header: dict[str, Any] = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken("Malformed token") from exc
        # RFC 8725 §3.11 explicit typing; §3.1 only the algorithms configured here. jku/jwk/x5u are never read.
        if str(header.get("typ", "")).lower() not in _TYPES:
            raise InvalidAccessToken("Not an access token (typ)")
        if header.get("alg") not in self.algorithms:
            raise InvalidAccessToken("Algorithm not allowed")
        if not isinstance(header.get("kid"), str):
            raise InvalidAccessToken("Token names no key (kid)")
        return header

    def _decode(self, jwt: ModuleType, token: str, header: dict[str, Any], key: Any) -> AccessTokenClaims:
        if key is None:
            raise InvalidAccessToken("Unknown signing key")
        if key.algorithm_name != header["alg"]:
            raise InvalidAccessToken("Algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken(f"Invalid token: {type(exc).__name__}") from exc
        sub, sid, jti = claims["sub"], claims["sid"], claims["jti"]
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit()):
            raise InvalidAccessToken("Invalid token: sub")
        if not (isinstance(sid, str) and isinstance(jti, str)):
            raise InvalidAccessToken("Invalid token: sid or jti")
        if self.revocations is not None:
            self.revocations.check(sid)
        return AccessTokenClaims(
            user_id=int(sub),
            session_id=sid,
            jti=jti,
            issuer=str(claims["iss"]),
            issued_at=datetime.fromtimestamp(int(claims["iat"]), tz=UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
            claims=claims,
        )

    # ----- the key set ------------------------------------------------------------------------------

    def _should_fetch(self, kid: str) -> bool:
        now = self._monotonic()
        if self._expires is None or now >= self._expires:
            return True
        if kid in self._keys:
            return False
        if self._refetched_at is not None and now - self._refetched_at < self.min_refetch_interval:
            return False
        self._refetched_at = now
        return True

    def _store(self, fetched: tuple[dict[str, Any], float] | None) -> None:
        now = self._monotonic()
        if fetched is None:  # keep what we have; try again after a short pause
            self._expires = now + min(self.min_refetch_interval, self.cache_ttl)
            if not self._keys:
                raise ServiceUnavailable("Cannot fetch the key set of the sessionward service", status=None)
            return
        self._keys, ttl = fetched
        self._expires = now + ttl
        self.fetches += 1

    def _fetch_sync(self) -> tuple[dict[str, Any], float] | None:
        try:
            with httpx.Client(transport=self._transport, timeout=self.timeout) as http:
                response = http.get(self.jwks_url)
        except httpx.TransportError as exc:
            log.warning("cannot fetch %s: %s", self.jwks_url, type(exc).__name__)
            return None
        return self._parse(response)

    async def _fetch_async(self) -> tuple[dict[str, Any], float] | None:
        try:
            async with httpx.AsyncClient(transport=self._async_transport, timeout=self.timeout) as http:
                response = await http.get(self.jwks_url)
        except httpx.TransportError as exc:
            log.warning("cannot fetch %s: %s", self.jwks_url, type(exc).__name__)
            return None
        return self._parse(response)

    def _parse(self, response: httpx.Response) -> tuple[dict[str, Any], float] | None:
        jwt = _jwt()
        try:
            if not response.is_success:
                raise ValueError(f"status {response.status_code}")
            listed = response.json()["keys"]
            if not isinstance(listed, list):
                raise TypeError("keys is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unusable key set from %s: %s", self.jwks_url, exc)
            return None
        keys: dict[str, Any] = {}
        for item in listed:
            if not (isinstance(item, dict) and isinstance(item.get("kid"), str) and item.get("kty") in _ASYMMETRIC):
                continue
            if item.get("use", "sig") != "sig":
                continue
            try:
                keys[item["kid"]] = jwt.PyJWK(item)
            except jwt.PyJWTError:
                continue  # an algorithm this installation cannot use
        return keys, _max_age(response.headers.get("cache-control"), self.cache_ttl)

    def _lock_for_loop(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._async_lock is None or self._loop is None or self._loop() is not loop:
            self._loop = weakref.ref(loop)
            self._async_lock = asyncio.Lock()
        return self._async_lock


def _max_age(cache_control: str | None, default: float) -> float:
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age":
            try:
                return max(0.0, min(float(value), default))
            except ValueError:
                break
    return default


_shared: dict[tuple[str, str, str], AccessTokenVerifier] = {}
_shared_lock = threading.Lock()


def verify_access_token(
    token: str, base_url: str | httpx.URL, *, issuer: str = "sessionward", audience: str = "sessionward"
) -> AccessTokenClaims:
    """Verify ``token`` with the JWKS of the service at ``base_url``; one cached verifier per service.

    For other options (algorithms, leeway, caching, an async variant) make an :class:`AccessTokenVerifier`.
    """
    key = (str(base_url).rstrip("/"), issuer, audience)
    with _shared_lock:
        verifier = _shared.get(key)
        if verifier is None:
            verifier = _shared[key] = AccessTokenVerifier(base_url, issuer=issuer, audience=audience)
    return verifier.verify_access_token(token)
