"""dispatch: leases on outgoing messages, failure times, a shared send-rate limiter

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import hytetu.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outgoing_message") as batch:
        batch.add_column(sa.Column("claimed_at", hytetu.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("first_attempt_at", hytetu.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("failed_at", hytetu.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("recovered", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "send_slot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("limiter", sa.String(length=320), nullable=False),
        sa.Column("at", hytetu.db.UTCDateTime(), nullable=False),
        sa.Column("run", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_send_slot_limiter", "send_slot", ["limiter"])
    op.create_table(
        "rate_limiter",
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("touched_at", hytetu.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("rate_limiter")
    op.drop_index("ix_send_slot_limiter", table_name="send_slot")
    op.drop_table("send_slot")
    with op.batch_alter_table("outgoing_message") as batch:
        for column in ("recovered", "failed_at", "first_attempt_at", "claimed_by", "claimed_at"):
            batch.drop_column(column)
