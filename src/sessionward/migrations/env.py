"""Alembic environment: runs on a connection handed over by ``sessionward.migrations.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import sessionward.apps.tables
import sessionward.audit.tables
import sessionward.mail.tables
import sessionward.outbox.tables
import sessionward.sessions.tables
import sessionward.tokens.tables
import sessionward.users.tables  # noqa: F401 - registers the tables on the metadata
from sessionward.db import metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `sessionward migrate`")
run(connection)
