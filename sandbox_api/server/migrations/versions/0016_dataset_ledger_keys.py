"""dataset ledger keys: one key per dataset for the ledger's cross-domain tokens, across its versions

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled when a dataset is created, or when a cross-domain job first needs it (the key provider
    # that wraps it is not available to a migration).
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("ledger_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("ledger_key")
