"""Seasonal fits in a compact binary form (float32 arrays) rather than JSON lists.

A half-hourly fit was ~7 KB of JSON, parsed into ~12 KB of Python floats; a fleet's bulk post
read 10,000 of them at the day turn. The binary form (`app.ml.seasonal.encode_cycles`) is ~1.5 KB
and reads back without parsing. Rows keep their JSON text as bytes, which the codec still reads.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("series_id", "model_id", "boundary_ts")


def upgrade() -> None:
    with op.batch_alter_table("seasonal_fits") as batch:
        batch.alter_column("cycles", type_=sa.LargeBinary(), existing_type=sa.JSON(),
                           existing_nullable=False,
                           postgresql_using="convert_to(cycles::text, 'UTF8')")
    if op.get_bind().dialect.name != "postgresql":
        # SQLite keeps a value's own type: make the JSON text bytes too.
        op.execute("UPDATE seasonal_fits SET cycles = CAST(cycles AS BLOB) "
                   "WHERE typeof(cycles) = 'text'")


def downgrade() -> None:
    # The codec of the fits the upgrade's successors wrote: only it can read them back.
    from app.ml.seasonal import decode_cycles

    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT {', '.join(KEYS)}, cycles FROM seasonal_fits")).all()
    match = " AND ".join(f"{key} = :{key}" for key in KEYS)
    update = sa.text(f"UPDATE seasonal_fits SET cycles = :cycles WHERE {match}")
    for row in rows:
        fit = decode_cycles(row[-1])
        bind.execute(update, {**dict(zip(KEYS, row[:-1], strict=True)),
                              "cycles": json.dumps([c.tolist() for c in fit.cycles]).encode()})
    if bind.dialect.name != "postgresql":
        op.execute("UPDATE seasonal_fits SET cycles = CAST(cycles AS TEXT) "
                   "WHERE typeof(cycles) = 'blob'")
    with op.batch_alter_table("seasonal_fits") as batch:
        batch.alter_column("cycles", type_=sa.JSON(), existing_type=sa.LargeBinary(),
                           existing_nullable=False,
                           postgresql_using="convert_from(cycles, 'UTF8')::json")
