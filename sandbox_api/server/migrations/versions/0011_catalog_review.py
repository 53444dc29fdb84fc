"""catalog review: a version is a draft with its validation report until a second steward publishes it

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        # NULL for versions stored before the workflow: they were live from their upload.
        batch.add_column(sa.Column("validation", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("review_reason", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    # Every version stored before went live at its upload: that is when it was published.
    op.execute("UPDATE dataset_versions SET published_at = created_at")


def downgrade() -> None:
    # A draft or returned version would read as live to the older code: retire them first.
    op.execute("UPDATE dataset_versions SET state = 'retired' WHERE state IN ('draft', 'returned')")
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("published_at")
        batch.drop_column("review_reason")
        batch.drop_column("reviewed_at")
        batch.drop_column("reviewed_by")
        batch.drop_column("validation")
