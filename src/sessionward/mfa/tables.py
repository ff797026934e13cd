from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, LargeBinary, String, Table, UniqueConstraint

from sessionward.db import UTCDateTime, metadata

# A user's TOTP authenticator: the secret sealed by the vault (never in plain text); ``last_step`` is the time step
# of the last code accepted, so each code is accepted once (RFC 6238 §5.2). Unconfirmed until a first code.
totp_factors = Table(
    "totp_factors",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("last_step", Integer, nullable=True),
)

# Recovery codes: only their SHA-256 (80 random bits each); a used one keeps its row, with ``used_at``.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    UniqueConstraint("user_id", "code_hash"),
)

# The second stage of a login: the challenge's SHA-256, bound to its user and to the browser and OS family that
# passed the first stage; deleted when used, and when it has taken too many wrong codes.
mfa_challenges = Table(
    "mfa_challenges",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("device", JSON, nullable=False),  # {"browser", "os"}
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),
)
