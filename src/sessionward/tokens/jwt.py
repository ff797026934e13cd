"""Access tokens: RFC 9068 ``at+jwt`` with pinned algorithm, issuer, audience and required claims."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from sessionward.errors import invalid_token
from sessionward.tokens.keys import Keys
from sessionward.tokens.opaque import new_jti

TYP = "at+jwt"
LEEWAY_SECONDS = 1  # API.md: clock leeway on exp is at most 1 s
_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedAccess:
    token: str
    jti: str
    expires_in: int


class AccessTokens:
    def __init__(self, keys: Keys, *, issuer: str, audience: str, lifetime: timedelta) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime

    def issue(self, *, user_id: int, session_id: str, now: datetime) -> IssuedAccess:
        keyset = self.keys.current(now=now)
        jti = new_jti()
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": session_id,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
        }
        headers = {"typ": TYP, "kid": keyset.kid}
        token = jwt.encode(claims, keyset.signing_key, algorithm=keyset.algorithm, headers=headers)
        return IssuedAccess(token, jti, int(self.lifetime.total_seconds()))

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        """Signature, header and claims; revocation is the caller's next step."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._key_for(header, now=now)
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.keys.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                # Time is checked below against our clock; PyJWT would read the wall clock.
                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError as exc:
            raise invalid_token() from exc
        return _claims(claims, now=now, lifetime=self.lifetime)

    def _key_for(self, header: dict[str, Any], *, now: datetime) -> Any:
        # RFC 8725 §3.11 explicit typing; §3.1 only the configured algorithm. jku/jwk/x5u are never read.
        if header.get("typ") != TYP or header.get("alg") != self.keys.algorithm:
            raise invalid_token()
        kid = header.get("kid")
        key = self.keys.verification_key(kid, now=now) if isinstance(kid, str) else None
        if key is None:
            raise invalid_token()
        return key


def _claims(claims: dict[str, Any], *, now: datetime, lifetime: timedelta) -> AccessClaims:
    sub, sid, jti, exp, iat = (claims[name] for name in ("sub", "sid", "jti", "exp", "iat"))
    nbf = claims.get("nbf", iat)  # never issued here; RFC 7519 §4.1.5 when present
    if not (
        isinstance(sub, str)
        and sub.isascii()
        and sub.isdigit()
        and len(sub) < 19
        and isinstance(sid, str)
        and isinstance(jti, str)
    ):
        raise invalid_token()
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in (exp, iat, nbf)):
        raise invalid_token()
    stamp = now.timestamp()
    if exp <= stamp - LEEWAY_SECONDS or iat > stamp + LEEWAY_SECONDS or nbf > stamp + LEEWAY_SECONDS:
        raise invalid_token()
    if not 0 < exp - iat <= lifetime.total_seconds():  # no token lives longer than the service issues them
        raise invalid_token()
    # exp is now within the lifetime of the present: no overflow past year 9999 (never a 5xx).
    return AccessClaims(int(sub), sid, jti, datetime.fromtimestamp(exp, tz=now.tzinfo))
