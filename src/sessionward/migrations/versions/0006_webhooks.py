"""webhooks

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 17:00:00

Webhook endpoints (the signing secret sealed), and the outbox's ordering key: a webhook endpoint's events of one
user are delivered in the order written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=64), nullable=True))
    pending = sa.text("done_at IS NULL")
    op.create_index(
        "ix_outbox_pending_ordering_key",
        "outbox",
        ["ordering_key", "id"],
        unique=False,
        sqlite_where=pending,
        postgresql_where=pending,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_ordering_key", table_name="outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("ordering_key")
    op.drop_table("webhook_endpoints")
