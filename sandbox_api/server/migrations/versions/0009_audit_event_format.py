"""audit events record the format they are hashed in

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Every event stored before this revision was hashed in the first format (crypto.audit.EVENT_FORMAT_V1).
_V1 = "data-sandbox/audit-event/v1"


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("format", sa.String(length=40), nullable=False, server_default=_V1))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("format")
