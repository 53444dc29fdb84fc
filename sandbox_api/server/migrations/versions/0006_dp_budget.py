"""differential-privacy budget ledger and charges

Revision ID: 0006
Revises: 0005
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
        "dp_budget_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lineage", sa.String(length=64), nullable=False),
        sa.Column("scope_name", sa.String(length=128), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("grantee", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("spent_epsilon", sa.BigInteger(), nullable=False),
        sa.Column("spent_delta", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dp_budget_ledger")),
        sa.UniqueConstraint("lineage", "grantee", "period", name=op.f("uq_dp_budget_ledger_lineage")),
    )
    op.create_table(
        "dp_budget_charges",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("ledger_id", sa.Integer(), nullable=False),
        sa.Column("epsilon", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ledger_id"],
            ["dp_budget_ledger.id"],
            name=op.f("fk_dp_budget_charges_ledger_id_dp_budget_ledger"),
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_dp_budget_charges")),
    )
    with op.batch_alter_table("dp_budget_charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dp_budget_charges_ledger_id"), ["ledger_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dp_budget_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dp_budget_charges_ledger_id"))
    op.drop_table("dp_budget_charges")
    op.drop_table("dp_budget_ledger")
