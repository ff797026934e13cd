"""Access tokens: RFC 9068 ``at+jwt`` with pinned algorithm, issuer, audience and required claims."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
import orjson

from sessionward.errors import invalid_token
from sessionward.tokens.keys import Keys
from sessionward.tokens.opaque import new_jti

TYP = "at+jwt"
LEEWAY_SECONDS = 1  # API.md: clock leeway on exp is at most 1 s
VERIFIED_KEPT = 10_000  # tokens remembered as verified, per process (about 4 MB)
_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]


class Aal(StrEnum):
    """Authenticator assurance level (NIST SP 800-63B): one factor, or two."""

    ONE = "aal1"
    TWO = "aal2"


@dataclass(frozen=True, slots=True)
class Strength:
    """How a session was authenticated: ``amr`` as RFC 8176 values, ``auth_time`` its latest authentication
    (a refresh is not one)."""

    aal: Aal
    amr: tuple[str, ...]
    auth_time: int  # epoch seconds, as the claim


UNKNOWN_STRENGTH = Strength(Aal.ONE, (), 0)
MFA = "mfa"  # RFC 8176: more than one factor


def authenticated(methods: tuple[str, ...], *, at: datetime, two_factors: bool = False) -> Strength:
    """The strength of an authentication by ``methods`` (RFC 8176) at ``at``: two factors when two different
    methods were used, or one that is two by itself (a passkey that verified its user)."""
    methods = tuple(dict.fromkeys(method for method in methods if method != MFA))
    two = two_factors or len(methods) >= 2
    return Strength(
        Aal.TWO if two else Aal.ONE, methods + ((MFA,) if two else ()), int(at.timestamp())
    )  # a token from before these claims: never fresh enough to step up


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    jti: str
    expires_at: datetime
    strength: Strength


@dataclass(frozen=True, slots=True)
class IssuedAccess:
    token: str
    jti: str
    expires_in: int

    def body(self) -> dict[str, Any]:
        """The wire shape (``data.access`` of a refresh, ``tokens.access`` of a login)."""
        return {"token": self.token, "expires_in": self.expires_in, "type": "Bearer"}


_Verified = tuple[AccessClaims, str, float, float]  # the claims, the key id, valid from, valid until (epoch s)

_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")  # RFC 7515 §7.1, unpadded


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(segment: str) -> bytes:
    """Canonical base64url only: a segment that re-encodes differently (stray bits) is refused."""
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if _b64encode(data) != segment.encode():
        raise ValueError("non-canonical base64url")
    return data


def _json_object(segment: str) -> dict[str, Any]:
    value = orjson.loads(_b64decode(segment))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class AccessTokens:
    """Compact JWS built and read here (the structure, strictly); signing and verifying by PyJWT's algorithm
    objects, with keys already in the form they take (bytes, key objects: see ``keys``). PyJWT's own
    ``encode``/``decode`` re-prepare the key and re-parse the header on every call: on the verification path
    that was half of a request's time."""

    def __init__(self, keys: Keys, *, issuer: str, audience: str, lifetime: timedelta) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self._algorithm = jwt.get_algorithm_by_name(keys.algorithm)
        self._verified: dict[str, _Verified] = {}

    def issue(self, *, user_id: int, session_id: str, strength: Strength, now: datetime) -> IssuedAccess:
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
            "aal": strength.aal.value,
            "amr": strength.amr,
            "auth_time": strength.auth_time,
        }
        header = {"alg": keyset.algorithm, "kid": keyset.kid, "typ": TYP}
        signing_input = _b64encode(orjson.dumps(header)) + b"." + _b64encode(orjson.dumps(claims))
        token = signing_input + b"." + _b64encode(self._algorithm.sign(signing_input, keyset.signing_key))
        return IssuedAccess(token.decode(), jti, int(self.lifetime.total_seconds()))

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        """Signature, header and claims; revocation is the caller's next step.

        A client sends the same token with every request for its whole life, so a token that verified is
        remembered (the exact string, signature included): again, only its expiry and its key are checked."""
        known = self._verified.get(token)
        if known is not None:
            claims, kid, valid_from, valid_until = known
            if valid_from <= now.timestamp() < valid_until and self.keys.verification_key(kid, now=now) is not None:
                return claims
        claims, kid, valid_from, valid_until = self._verify(token, now=now)
        if len(self._verified) >= VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (claims, kid, valid_from, valid_until)
        return claims

    def _verify(self, token: str, *, now: datetime) -> _Verified:
        parts = _COMPACT.fullmatch(token)  # (a "$" would let a trailing newline through)
        if parts is None:
            raise invalid_token()
        try:
            header = _json_object(parts[1])
            key = self._key_for(header, now=now)
            signature = _b64decode(parts[3])
            if not self._algorithm.verify(f"{parts[1]}.{parts[2]}".encode(), key, signature):
                raise invalid_token()
            claims = _json_object(parts[2])
        except (ValueError, TypeError, binascii.Error, jwt.PyJWTError) as exc:  # orjson's error is a ValueError
            raise invalid_token() from exc
        if claims.get("iss") != self.issuer or not _audience_ok(claims.get("aud"), self.audience):
            raise invalid_token()
        if any(name not in claims for name in _REQUIRED):
            raise invalid_token()
        checked = _claims(claims, now=now, lifetime=self.lifetime)
        # The window in which _claims accepts it: from iat (or nbf) less the leeway, to exp plus the leeway.
        valid_from = max(claims["iat"], claims.get("nbf", claims["iat"])) - LEEWAY_SECONDS
        return checked, header["kid"], valid_from, claims["exp"] + LEEWAY_SECONDS

    def _key_for(self, header: dict[str, Any], *, now: datetime) -> Any:
        # RFC 8725 §3.11 explicit typing; §3.1 only the configured algorithm. jku/jwk/x5u are never read;
        # RFC 7515 §4.1.11: no critical extension is understood here, so any is refused (b64=false too).
        if header.get("typ") != TYP or header.get("alg") != self.keys.algorithm or "crit" in header:
            raise invalid_token()
        if "b64" in header and header["b64"] is not True:
            raise invalid_token()
        kid = header.get("kid")
        key = self.keys.verification_key(kid, now=now) if isinstance(kid, str) else None
        if key is None:
            raise invalid_token()
        return key


def _audience_ok(aud: Any, audience: str) -> bool:
    """RFC 7519 §4.1.3: one string, or an array that contains ours."""
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and audience in aud


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
    return AccessClaims(int(sub), sid, jti, datetime.fromtimestamp(exp, tz=now.tzinfo), _strength(claims))


def _strength(claims: dict[str, Any]) -> Strength:
    """``aal``, ``amr``, ``auth_time``: all three or none (a token issued before they existed)."""
    aal, amr, auth_time = claims.get("aal"), claims.get("amr"), claims.get("auth_time")
    if aal is None and amr is None and auth_time is None:
        return UNKNOWN_STRENGTH
    if (
        aal not in (Aal.ONE, Aal.TWO)
        or not isinstance(amr, list)
        or len(amr) > 8
        or not all(isinstance(method, str) for method in amr)
        or not isinstance(auth_time, int)
        or isinstance(auth_time, bool)
        or not 0 < auth_time < 2**40
    ):
        raise invalid_token()
    return Strength(Aal(aal), tuple(amr), auth_time)
