"""access applications and alerts on unusual use

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_applications",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("applicant", sa.String(length=64), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("scope_name", sa.String(length=128), nullable=True),
        sa.Column("scope_version", sa.String(length=64), nullable=True),
        sa.Column("drafted_by", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_applications")),
    )
    with op.batch_alter_table("access_applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_applications_applicant"), ["applicant"], unique=False)
    op.create_table(
        "usage_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_alerts")),
    )
    with op.batch_alter_table("usage_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_alerts_operator"), ["operator"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_alerts_operator"))
    op.drop_table("usage_alerts")
    with op.batch_alter_table("access_applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_applications_applicant"))
    op.drop_table("access_applications")
