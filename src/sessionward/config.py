"""Settings from the environment and ``.env``; names follow API.md's table."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from croniter import croniter
from limits import parse_many
from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def _parse_duration(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text.isdigit():
            return timedelta(seconds=int(text))
        if _DURATION.fullmatch(text):
            return sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in _PART.findall(text)), timedelta())
        raise ValueError("expected a duration such as 15m, 30d, 10s")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]


def _rate(value: str) -> str:
    try:
        parse_many(value)
    except ValueError as exc:
        raise ValueError("expected a rate such as 10/minute") from exc
    return value


Rate = Annotated[str, AfterValidator(_rate)]


class IpValidation(StrEnum):
    OFF = "false"
    AUDIT = "true"
    STRICT = "strict"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite:///./var/sessionward.db"
    database_timeout: Duration = timedelta(seconds=5)
    redis_url: str | None = None
    data_dir: Path = Path("./var")

    jwt_secret: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "EdDSA", "ES256"] = "HS256"
    jwt_private_key_file: Path | None = None
    jwt_issuer: str = "sessionward"
    jwt_audience: str = "sessionward"

    access_token_expires_in: Duration = timedelta(minutes=15)
    refresh_token_expires_in: Duration = timedelta(days=30)
    session_expires_in: Duration = timedelta(days=30)
    session_idle_timeout: Duration = timedelta(days=14)
    max_sessions_per_user: int = 5
    refresh_token_rotation: bool = True
    refresh_token_reuse_interval: Duration = timedelta(seconds=10)
    device_fingerprinting: bool = True
    session_activity_tracking: bool = True
    session_ip_validation: IpValidation = IpValidation.AUDIT
    session_cache_ttl: Duration = timedelta(seconds=1)

    rate_limit_enabled: bool = True
    login_rate_limit: Rate = "10/minute"
    register_rate_limit: Rate = "5/minute"
    refresh_rate_limit: Rate = "60/minute"

    cleanup_schedule: str = "0 * * * *"
    cleanup_batch_size: int = 1000
    token_retention: Duration = timedelta(days=1)
    audit_retention: Duration = timedelta(days=90)

    require_email_verification: bool = False
    registration_enabled: bool = True
    auto_migrate: bool = True
    password_min_length: int = 8
    password_max_length: int = 128
    argon2_memory_kib: int = 65536
    argon2_time_cost: int = 3
    argon2_parallelism: int = 4

    public_url: str = "http://127.0.0.1:8000"
    smtp_url: SecretStr | None = None
    smtp_ca_file: Path | None = None
    mail_from: str = "sessionward <no-reply@localhost>"
    mail_templates_dir: Path | None = None
    email_verification_expires_in: Duration = timedelta(hours=24)
    password_reset_expires_in: Duration = timedelta(hours=1)
    email_rate_limit: Rate = "3/hour"
    new_device_alerts: bool = True

    trusted_proxies: Annotated[list[str], NoDecode] = []

    # Cross-origin front ends (API.md "Cross-origin front ends and the JavaScript SDK").
    cors_allowed_origins: Annotated[frozenset[str], NoDecode] = frozenset()
    cookie_samesite: Literal["strict", "lax", "none"] = "strict"
    cookie_domain: str | None = None

    # Stronger sign-in (API.md "Stronger sign-in"): the recency sensitive actions need, and the data key ring.
    step_up_max_age: Duration = timedelta(minutes=10)
    webauthn_rp_id: str | None = None  # the passkeys' relying party: by default the host of PUBLIC_URL
    data_encryption_key: SecretStr | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator(
        "max_sessions_per_user",
        "cleanup_batch_size",
        "password_min_length",
        "argon2_time_cost",
        "argon2_parallelism",
    )
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("argon2_memory_kib")
    @classmethod
    def _memory(cls, value: int) -> int:
        if value < 1024:
            raise ValueError("must be at least 1024 (KiB)")
        return value

    @field_validator("password_max_length")
    @classmethod
    def _max_length(cls, value: int) -> int:
        if not 8 <= value <= 4096:
            raise ValueError("must be between 8 and 4096")
        return value

    @field_validator("cleanup_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        value = value.strip()
        if value.lower() != "off" and not croniter.is_valid(value):
            raise ValueError("expected a cron expression such as '0 * * * *', or 'off'")
        return value

    @field_validator("public_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("expected an origin such as https://auth.example.com")
        return value.strip().rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError("expected smtp://user:pass@host:587, smtps://user:pass@host:465 or smtp://host:1025")
        return value

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "\r" in value or "\n" in value or "@" not in address:
            raise ValueError("expected an address such as 'sessionward <no-reply@example.com>'")
        return value

    @field_validator("data_encryption_key")
    @classmethod
    def _data_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = [part.strip() for part in value.get_secret_value().split(",") if part.strip()]
            if not parts or not all(_DATA_KEY.fullmatch(part) for part in parts):
                raise ValueError("expected base64url keys of 32 bytes, comma-separated (the first one encrypts)")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("session_ip_validation", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(_origin(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("cookie_samesite", mode="before")
    @classmethod
    def _samesite(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cookie_domain", mode="before")
    @classmethod
    def _domain(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower().removeprefix(".")
            if value and not _DOMAIN.fullmatch(value):
                raise ValueError("expected a domain such as example.com")
            return value or None
        return value

    @property
    def activity_write_interval(self) -> timedelta:
        """API.md: at most one activity write per session every min(60 s, idle timeout / 4)."""
        return min(timedelta(seconds=60), self.session_idle_timeout / 4)


_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(?::\d{1,5})?|https?://\[[0-9a-f:.]+\](?::\d{1,5})?")
_DATA_KEY = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, unpadded base64url
_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")


def _origin(text: str) -> str:
    """An exact origin (RFC 6454 serialisation): scheme, host and port, nothing else; never ``*`` or ``null``."""
    origin = text.strip().lower()
    if origin == "*":
        raise ValueError("'*' cannot be used with credentials: list each origin, such as https://app.example.com")
    if not _ORIGIN.fullmatch(origin):
        raise ValueError(f"expected origins such as https://app.example.com (no path, no trailing slash): {text!r}")
    # Browsers leave a scheme's default port out of Origin.
    return origin.removesuffix(":443") if origin.startswith("https:") else origin.removesuffix(":80")


class ConfigError(Exception):
    """A setting is invalid; the message is one line naming the variable."""


def load_settings(**overrides: Any) -> Settings:
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {name}: {message}") from None
    if settings.env is Environment.PRODUCTION and settings.jwt_algorithm == "HS256" and settings.jwt_secret is None:
        raise ConfigError("invalid setting JWT_SECRET: required when ENV=production")
    if settings.jwt_secret is not None and len(settings.jwt_secret.get_secret_value().encode()) < 32:
        raise ConfigError("invalid setting JWT_SECRET: must be at least 32 bytes (RFC 7518 §3.2)")
    _check_samesite(settings)
    return settings


def _check_samesite(settings: Settings) -> None:
    # SameSite=None cookies must be Secure (RFC 6265bis §5.4.7): only https front ends can use them.
    if settings.cookie_samesite == "none" and any(not o.startswith("https://") for o in settings.cors_allowed_origins):
        raise ConfigError("invalid setting COOKIE_SAMESITE: none needs every CORS_ALLOWED_ORIGINS entry on https")
