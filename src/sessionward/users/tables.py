from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, Text

from sessionward.db import UTCDateTime, metadata

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False, server_default="user"),
    Column("email_verified_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # A user id is a JWT `sub`, never reassigned (OpenID Connect Core §2): no reuse after an erasure.
    sqlite_autoincrement=True,
)
