"""Covariates and calendars: a series names other series as its covariates, and its holidays.

`series_covariates` links a series to a covariate series under a name (temperature, ...), one
link per name; `series.holidays` is a `holidays` package code (US, GB-ENG) and
`series.special_days` a list of {date, label} days the calendar treats as holidays.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "series_covariates",
        sa.Column("series_id", sa.Integer(), sa.ForeignKey("series.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("covariate_series_id", sa.Integer(),
                  sa.ForeignKey("series.id", ondelete="CASCADE"), nullable=False),
        sa.Column("known_future", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_series_covariates_covariate_series_id", "series_covariates",
                    ["covariate_series_id"])
    # Plain ALTER TABLE on both databases: batch mode would rebuild the table on SQLite and
    # lose its AUTOINCREMENT.
    op.add_column("series", sa.Column("holidays", sa.String(32), nullable=True))
    op.add_column("series", sa.Column("special_days", sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))


def downgrade() -> None:
    # ALTER TABLE DROP COLUMN (SQLite 3.35+) rather than batch mode's rebuild: dropping the
    # old table with foreign keys on would cascade into every table that references a series.
    op.drop_column("series", "special_days")
    op.drop_column("series", "holidays")
    op.drop_index("ix_series_covariates_covariate_series_id", "series_covariates")
    op.drop_table("series_covariates")
