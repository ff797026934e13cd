from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table

from sessionward.db import UTCDateTime, metadata

# Everything delivered later (mail now; webhooks share it): a row is written in the transaction of the change
# that causes it, and a sender in each process delivers it under a lease.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    # No foreign key: what tells of an erased account must outlive it.
    Column("user_id", Integer, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("leased_until", UTCDateTime, nullable=True),
    Column("lease_owner", String(32), nullable=True),
    Column("done_at", UTCDateTime, nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("detail", String(200), nullable=True),
    Index(None, "done_at"),
)
# What a sender looks for: the rows still to deliver, by when they are due.
_pending = outbox.c.done_at.is_(None)
Index("ix_outbox_pending_due_at", outbox.c.due_at, sqlite_where=_pending, postgresql_where=_pending)
