"""A version of each series' readings, so that a process can tell cheaply whether the covariate
readings it keeps (`app.covariate_cache`) are still the stored ones.

Every write of a covariate's readings sets it anew in the writing transaction (`app.db.
readings_versions`); rows start at 0, and linking a series as a covariate sets a fresh one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, as 0008: batch mode would rebuild `series` on SQLite,
    # and dropping the old table with foreign keys on cascades into every table that references it.
    op.add_column("series", sa.Column("readings_version", sa.BigInteger(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    op.drop_column("series", "readings_version")  # ALTER TABLE DROP COLUMN (SQLite 3.35+)
