"""audit witnesses: keys held outside the gateway and their co-signatures of audit checkpoints

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_witnesses",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=True),
        sa.Column("kid", sa.String(length=32), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public", sa.Text(), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_audit_witnesses"),
    )
    op.create_table(
        "audit_witness_signatures",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["witness"],
            ["audit_witnesses.name"],
            name="fk_audit_witness_signatures_witness_audit_witnesses",
        ),
        sa.PrimaryKeyConstraint("seq", "witness", name="pk_audit_witness_signatures"),
    )


def downgrade() -> None:
    op.drop_table("audit_witness_signatures")
    op.drop_table("audit_witnesses")
