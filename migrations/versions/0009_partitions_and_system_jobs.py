"""Readings partitioned by month on PostgreSQL; jobs of the service itself (maintenance, fits).

PostgreSQL: `readings` becomes a table partitioned by range of `ts` (one partition per calendar
month, UTC), with a DEFAULT partition that takes any reading no partition covers, so an insert
never fails when maintenance is late. Existing rows move into the partitions of their months; the
current month and the next two are created too. SQLite keeps its one table.

Both databases: a job may belong to no tenant and no model (the service's own maintenance), and
carries `params` and a `dedupe_key`, unique, so that workers that schedule the same job at the
same time queue it once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A partition per month of the existing rows, and the current month and two after it.
PARTITION_EXISTING_MONTHS = """
DO $$
DECLARE
    month timestamp;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', to_timestamp(ts) AT TIME ZONE 'UTC')
        FROM readings_unpartitioned
        UNION
        SELECT generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'),
                               date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months',
                               interval '1 month')
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%s) TO (%s)',
                       'readings_p' || to_char(month, 'YYYYMM'),
                       extract(epoch FROM month)::bigint,
                       extract(epoch FROM month + interval '1 month')::bigint);
    END LOOP;
END $$
"""


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("tenant_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("model_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("dedupe_key", sa.String(200), nullable=True))
        batch.create_unique_constraint("uq_jobs_dedupe_key", ["dedupe_key"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE readings RENAME TO readings_unpartitioned")
    op.execute("ALTER TABLE readings_unpartitioned RENAME CONSTRAINT readings_pkey "
               "TO readings_unpartitioned_pkey")
    op.execute("CREATE TABLE readings (series_id integer NOT NULL, ts bigint NOT NULL, "
               "value double precision, PRIMARY KEY (series_id, ts)) PARTITION BY RANGE (ts)")
    op.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
    op.execute(PARTITION_EXISTING_MONTHS)
    op.execute("INSERT INTO readings (series_id, ts, value) "
               "SELECT series_id, ts, value FROM readings_unpartitioned")
    op.execute("DROP TABLE readings_unpartitioned")
    op.execute("ANALYZE readings")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TABLE readings_unpartitioned (series_id integer NOT NULL, "
                   "ts bigint NOT NULL, value double precision)")
        op.execute("INSERT INTO readings_unpartitioned SELECT series_id, ts, value FROM readings")
        op.execute("DROP TABLE readings")  # and every partition with it
        op.execute("ALTER TABLE readings_unpartitioned RENAME TO readings")
        op.execute("ALTER TABLE readings ADD CONSTRAINT readings_pkey PRIMARY KEY (series_id, ts)")
    # The service's own jobs have no tenant or model to go back to.
    op.execute("DELETE FROM jobs WHERE tenant_id IS NULL OR model_id IS NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_dedupe_key", type_="unique")
        batch.drop_column("dedupe_key")
        batch.drop_column("params")
        batch.alter_column("model_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("tenant_id", existing_type=sa.Integer(), nullable=False)
