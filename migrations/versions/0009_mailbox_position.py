"""mailbox_position: where a mailbox reader is between ticks (Graph's delta link)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:30:00
"""

import sqlalchemy as sa
from alembic import op

import hytetu.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_position",
        sa.Column("mailbox", sa.String(length=500), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", hytetu.db.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mailbox_position")
