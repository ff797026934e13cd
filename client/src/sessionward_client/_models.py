"""Typed results: frozen dataclasses parsed from the service's JSON (unknown fields are ignored)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _required_time(value: Any) -> datetime:
    parsed = _time(value)
    if parsed is None:
        raise ValueError(f"expected an ISO 8601 time, got {value!r}")
    return parsed


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str | None
    role: str
    email_verified_at: datetime | None
    created_at: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> User:
        return cls(
            id=int(data["id"]),
            email=str(data["email"]),
            name=_str(data.get("name")),
            role=str(data.get("role", "user")),
            email_verified_at=_time(data.get("email_verified_at")),
            created_at=_required_time(data.get("created_at")),
        )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the service recorded about the device of a session (parsed from its User-Agent)."""

    browser: str | None = None
    os: str | None = None
    device: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    fingerprint: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> DeviceInfo | None:
        if not isinstance(data, dict):
            return None
        return cls(
            browser=_str(data.get("browser")),
            os=_str(data.get("os")),
            device=_str(data.get("device")),
            user_agent=_str(data.get("userAgent")),
            ip=_str(data.get("ip")),
            fingerprint=_str(data.get("fingerprint")),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """One active session (a signed-in device) of the caller."""

    id: str
    device_info: DeviceInfo | None
    ip_address: str | None
    created_at: datetime | None
    last_activity: datetime | None
    expires_at: datetime | None
    is_current: bool
    aal: str | None = None  # "aal1" (one factor) or "aal2" (two)
    auth_time: datetime | None = None  # when the user last authenticated in it

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        return cls(
            id=str(data["id"]),
            device_info=DeviceInfo.from_json(data.get("device_info")),
            ip_address=_str(data.get("ip_address")),
            created_at=_time(data.get("created_at")),
            last_activity=_time(data.get("last_activity")),
            expires_at=_time(data.get("expires_at")),
            is_current=bool(data.get("is_current", False)),
            aal=_str(data.get("aal")),
            auth_time=_time(data.get("auth_time")),
        )


@dataclass(frozen=True, slots=True)
class SessionList:
    """``sessions()``: the session of the current token (if active) and the caller's other active sessions."""

    current: Session | None
    others: list[Session]

    @property
    def all(self) -> list[Session]:
        return ([self.current] if self.current is not None else []) + self.others

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionList:
        current = data.get("current_session")
        return cls(
            current=Session.from_json(current) if isinstance(current, dict) else None,
            others=[Session.from_json(item) for item in data.get("other_sessions", [])],
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One security event of the caller (``login_succeeded``, ``refresh_token_reused``, ...)."""

    id: int
    type: str
    at: datetime
    session_id: str | None
    ip_address: str | None
    device_info: DeviceInfo | None
    details: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        details = data.get("details")
        return cls(
            id=int(data["id"]),
            type=str(data["type"]),
            at=_required_time(data.get("at")),
            session_id=_str(data.get("session_id")),
            ip_address=_str(data.get("ip_address")),
            device_info=DeviceInfo.from_json(data.get("device_info")),
            details=details if isinstance(details, dict) else {},
        )


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What a token store keeps: the session id and its current access and refresh tokens.

    Times are seconds since the epoch on the local clock (``obtained_at`` is when the answer arrived),
    so a process that restarts knows whether the stored access token is still fresh. The tokens are
    left out of ``repr`` so they do not end up in logs.
    """

    session_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_in: float
    refresh_expires_in: float | None = None
    obtained_at: float = field(default_factory=time.time)

    @property
    def access_expires_at(self) -> float:
        return self.obtained_at + self.access_expires_in

    @property
    def refresh_expires_at(self) -> float | None:
        return None if self.refresh_expires_in is None else self.obtained_at + self.refresh_expires_in

    def access_expiring(self, *, margin: float, now: float | None = None) -> bool:
        """True once the access token is within ``margin`` seconds (at most a quarter of its life) of expiry."""
        now = time.time() if now is None else now
        lead = min(margin, self.access_expires_in / 4)
        return now >= self.access_expires_at - lead

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for your own token store."""
        return {
            "session_id": self.session_id,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "access_expires_in": self.access_expires_in,
            "refresh_expires_in": self.refresh_expires_in,
            "obtained_at": self.obtained_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSet:
        refresh_expires_in = data.get("refresh_expires_in")
        return cls(
            session_id=str(data["session_id"]),
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            access_expires_in=float(data["access_expires_in"]),
            refresh_expires_in=None if refresh_expires_in is None else float(refresh_expires_in),
            obtained_at=float(data["obtained_at"]),
        )

    @classmethod
    def from_tokens_json(cls, data: dict[str, Any], *, session_id: str, obtained_at: float) -> TokenSet:
        """From the service's ``{"access": {...}, "refresh": {...}}`` (login's ``tokens``, refresh's ``data``)."""
        access, refresh = data["access"], data["refresh"]
        refresh_expires_in = refresh.get("expires_in")
        return cls(
            session_id=session_id,
            access_token=str(access["token"]),
            refresh_token=str(refresh["token"]),
            access_expires_in=float(access["expires_in"]),
            refresh_expires_in=None if refresh_expires_in is None else float(refresh_expires_in),
            obtained_at=obtained_at,
        )


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``login()``: the user and the new session (its tokens are already in the token store)."""

    user: User
    session_id: str
    session_expires_at: datetime | None
    device_info: DeviceInfo | None
    tokens: TokenSet

    @classmethod
    def from_json(cls, data: dict[str, Any], *, obtained_at: float) -> LoginResult:
        session = data["session"]
        session_id = str(session["id"])
        return cls(
            user=User.from_json(data["user"]),
            session_id=session_id,
            session_expires_at=_time(session.get("expires_at")),
            device_info=DeviceInfo.from_json(session.get("device_info")),
            tokens=TokenSet.from_tokens_json(data["tokens"], session_id=session_id, obtained_at=obtained_at),
        )


@dataclass(frozen=True, slots=True)
class MfaRequired:
    """``login()`` of a user with two-step verification: no session yet. Finish with ``login_mfa(challenge, totp=...)``
    (or ``recovery_code=...``) within ``expires_in`` seconds."""

    challenge: str
    factors: list[str]
    expires_in: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MfaRequired:
        return cls(
            challenge=str(data["challenge"]),
            factors=[str(factor) for factor in data.get("factors", [])],
            expires_in=int(data.get("expires_in", 0)),
        )
