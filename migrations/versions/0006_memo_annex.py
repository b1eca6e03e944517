"""memo annex: a group memo's feedback responses verbatim, as PDF/A and CSV

Revision ID: 0006
Revises: 0001
Create Date: 2026-12-01 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memo_version") as batch:
        batch.add_column(sa.Column("annex_filename", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("annex_pdf", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("annex_csv", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("memo_version") as batch:
        batch.drop_column("annex_csv")
        batch.drop_column("annex_pdf")
        batch.drop_column("annex_filename")
