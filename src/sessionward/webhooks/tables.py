from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, LargeBinary, String, Table

from sessionward.db import UTCDateTime, metadata

# Where events are posted (Standard Webhooks). The signing secret is sealed with the data key ring: it must be
# read back to sign, so it cannot be hashed.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("events", JSON, nullable=False),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Set by the first failure of a run of them, cleared by a success; 24 h of failure disables the endpoint.
    Column("failing_since", UTCDateTime, nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("disabled_at", UTCDateTime, nullable=True),
)
