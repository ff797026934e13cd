from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table

from sessionward.db import UTCDateTime, metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("session_id", String(64), nullable=True),
    Column("ip_address", String(45), nullable=True),
    Column("device_info", JSON, nullable=True),
    Column("details", JSON, nullable=True),
    Index(None, "user_id", "id"),
    Index(None, "at"),
)
