"""mailbox: incoming messages read once, RSVPs, and what came back for outgoing messages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00
"""

import sqlalchemy as sa
from alembic import op

import hytetu.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outgoing_message") as batch:
        batch.add_column(sa.Column("bounced_at", hytetu.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("bounce_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("delayed_at", hytetu.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("receipt_at", hytetu.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("registry_reference", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_outgoing_message_replaces_id", "outgoing_message", ["replaces_id"], ["id"]
        )
    op.create_table(
        "incoming_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=500), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("outgoing_message_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("received_at", hytetu.db.UTCDateTime(), nullable=True),
        sa.Column("handled_at", hytetu.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["outgoing_message_id"], ["outgoing_message.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox", "key"),
    )
    op.create_table(
        "rsvp",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("partstat", sa.String(length=20), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("answered_at", hytetu.db.UTCDateTime(), nullable=False),
        sa.Column("delegated_to", sa.String(length=320), nullable=True),
        sa.Column("incoming_message_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycle.id"]),
        sa.ForeignKeyConstraint(["session_id"], ["session.id"]),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["incoming_message_id"], ["incoming_message.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "contact_id"),
    )


def downgrade() -> None:
    op.drop_table("rsvp")
    op.drop_table("incoming_message")
    with op.batch_alter_table("outgoing_message") as batch:
        batch.drop_constraint("fk_outgoing_message_replaces_id", type_="foreignkey")
        for column in (
            "replaces_id",
            "registry_reference",
            "receipt_at",
            "delayed_at",
            "bounce_reason",
            "bounced_at",
        ):
            batch.drop_column(column)
