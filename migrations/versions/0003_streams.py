"""Streams with their carried state, and warmed end-of-history states per series and model.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "streams",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("series_id", sa.Integer(), sa.ForeignKey("series.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("model_id", sa.Integer(),
                  sa.ForeignKey("forecast_models.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("last_ts", sa.BigInteger(), nullable=True),
        sa.Column("readings_applied", sa.Integer(), nullable=False),
        sa.Column("next_forecast", sa.JSON(), nullable=True),
        sa.Column("accuracy", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_streams_tenant_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "series_states",
        sa.Column("series_id", sa.Integer(), sa.ForeignKey("series.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("model_id", sa.Integer(),
                  sa.ForeignKey("forecast_models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("last_ts", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("series_states")
    op.drop_table("streams")
