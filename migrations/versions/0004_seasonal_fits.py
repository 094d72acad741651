"""Seasonal fits per series, model and day, shared by the streams of deseasonalised stream models.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seasonal_fits",
        sa.Column("series_id", sa.Integer(), sa.ForeignKey("series.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("model_id", sa.Integer(),
                  sa.ForeignKey("forecast_models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("boundary_ts", sa.BigInteger(), primary_key=True),
        sa.Column("cycles", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("seasonal_fits")
