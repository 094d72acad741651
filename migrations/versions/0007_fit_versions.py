"""A version on each seasonal fit, so replicas can keep fits in memory and still never read a stale one.

A fit is dropped and made again when readings before its day change; the new row gets a new
version, and a replica whose cached copy carries the old one reads the row again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("seasonal_fits") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("seasonal_fits") as batch:
        batch.drop_column("version")
