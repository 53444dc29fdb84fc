"""released-cohort ledger

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cohort_ledger_heads",
        sa.Column("lineage", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lineage", name=op.f("pk_cohort_ledger_heads")),
    )
    op.create_table(
        "cohort_ledger_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lineage", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("cohorts", sa.Integer(), nullable=False),
        sa.Column("unchecked", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lineage"],
            ["cohort_ledger_heads.lineage"],
            name=op.f("fk_cohort_ledger_batches_lineage_cohort_ledger_heads"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort_ledger_batches")),
        sa.UniqueConstraint("lineage", "seq", name=op.f("uq_cohort_ledger_batches_lineage")),
    )
    with op.batch_alter_table("cohort_ledger_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cohort_ledger_batches_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cohort_ledger_batches_lineage"), ["lineage"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cohort_ledger_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cohort_ledger_batches_lineage"))
        batch_op.drop_index(batch_op.f("ix_cohort_ledger_batches_job_id"))
    op.drop_table("cohort_ledger_batches")
    op.drop_table("cohort_ledger_heads")
