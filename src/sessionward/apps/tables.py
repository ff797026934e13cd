from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, String, Table

from sessionward.db import UTCDateTime, metadata

# Keys of an app's own backend: only the SHA-256 of a key is stored; a revoked key stays, for the record.
service_keys = Table(
    "service_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)
