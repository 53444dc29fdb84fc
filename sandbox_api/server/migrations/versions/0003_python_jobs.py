"""python jobs, mock mode and output review

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        # Server defaults: jobs stored before this revision were real SQL jobs.
        batch_op.add_column(sa.Column("kind", sa.String(length=8), server_default="sql", nullable=False))
        batch_op.add_column(sa.Column("mode", sa.String(length=8), server_default="real", nullable=False))
        batch_op.add_column(sa.Column("code", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("review", sa.JSON(), nullable=True))

    op.create_table(
        "withheld_outputs",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("required_checkers", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_withheld_outputs_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_withheld_outputs")),
    )
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("checker", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_review_decisions_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
        sa.UniqueConstraint("job_id", "checker", name=op.f("uq_review_decisions_job_id")),
    )
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_decisions_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_decisions_job_id"))
    op.drop_table("review_decisions")
    op.drop_table("withheld_outputs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("review")
        batch_op.drop_column("code")
        batch_op.drop_column("mode")
        batch_op.drop_column("kind")
