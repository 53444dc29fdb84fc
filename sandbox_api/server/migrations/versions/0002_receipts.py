"""receipts and crypto-shredded dataset versions

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("kid", sa.String(length=32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_receipts_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_receipts")),
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_receipts_kid"), ["kid"], unique=False)

    op.create_table(
        "dataset_shreds",
        sa.Column("version_row_id", sa.Integer(), nullable=False),
        sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shredded_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_row_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_shreds_version_row_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("version_row_id", name=op.f("pk_dataset_shreds")),
    )


def downgrade() -> None:
    op.drop_table("dataset_shreds")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_receipts_kid"))
    op.drop_table("receipts")
