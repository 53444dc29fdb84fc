"""what the disclosure rules need at release, recorded at submit

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        # NULL for jobs stored before this revision: they are released with no additive columns and
        # no disjoint groups, exactly as they were checked when they ran.
        batch_op.add_column(sa.Column("release_facts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("release_facts")
