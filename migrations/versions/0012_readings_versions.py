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
    with op.batch_alter_table("series") as batch:
        batch.add_column(sa.Column("readings_version", sa.BigInteger(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.drop_column("readings_version")
