from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Table

from sessionward.db import UTCDateTime, metadata

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("parent_id", Integer, nullable=True),
    Column("generation", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("rotated_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    # The successor, sealed under a key derived from this (the parent) token: only a holder of the
    # parent can open it, so the grace interval can return the same successor without storing it.
    Column("successor_sealed", LargeBinary, nullable=True),
    Index(None, "session_id"),
    Index(None, "parent_id"),
    Index(None, "expires_at"),
)

token_blacklist = Table(
    "token_blacklist",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("blacklisted_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "session_id"),
    Index(None, "expires_at"),
)
