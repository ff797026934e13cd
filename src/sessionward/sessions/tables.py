from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table, Text

from sessionward.db import UTCDateTime, metadata

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("device_info", JSON, nullable=False),
    Column("ip_address", String(45), nullable=True),
    Column("user_agent", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_activity", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoke_reason", String(32), nullable=True),
    # How it was authenticated (API.md "Stronger sign-in"): aal1/aal2, RFC 8176 methods space-separated, and when.
    Column("aal", String(8), nullable=False, server_default="aal1"),
    Column("amr", String(64), nullable=False, server_default="pwd"),
    Column("auth_time", UTCDateTime, nullable=False),
    Index(None, "user_id", "revoked_at"),
    Index(None, "expires_at"),
    # The revocation stream reads the sessions revoked since an instant (the refresh path never sets it).
    Index(None, "revoked_at"),
)
