from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table

from sessionward.db import UTCDateTime, metadata

# The tokens of mailed links: only their SHA-256 is stored; a used token is deleted (single use).
mail_tokens = Table(
    "mail_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("email", String(320), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "user_id", "purpose"),
    Index(None, "expires_at"),
)
