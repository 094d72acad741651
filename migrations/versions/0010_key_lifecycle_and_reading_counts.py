"""Keys with a name, a scope, a last use and an expiry; a count of each tenant's stored readings.

The count lets every path that stores readings check the tenant's quota without counting its
rows; it starts from the readings stored now. It is kept in shards, so that concurrent posts of
one tenant do not queue for one row (app/db/reading_counts.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_readings",
        sa.Column("tenant_id", sa.Integer(),
                  sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("readings", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute("INSERT INTO tenant_readings (tenant_id, shard, readings) "
               "SELECT series.tenant_id, 0, count(*) FROM readings "
               "JOIN series ON series.id = readings.series_id GROUP BY series.tenant_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=False,
                                   server_default="default"))
        batch.add_column(sa.Column("scope", sa.String(8), nullable=False,
                                   server_default="write"))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for column in ("expires_at", "last_used_at", "scope", "name"):
            batch.drop_column(column)
    op.drop_table("tenant_readings")
