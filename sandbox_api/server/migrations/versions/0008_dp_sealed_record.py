"""sealed differential-privacy record with each result

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A DP job's exact values and noise, sealed under the results key (NULL for every other job).
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("dp_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.drop_column("dp_sealed")
