"""Streams' and warmed series' states in a compact binary form rather than JSON.

A fleet's post parsed and wrote about 1.1 KB of JSON per stream; the binary form
(`app.ml.stream_state`) is a version byte, a fixed header and the float64 arrays, read back
without parsing. Rows keep their JSON text as bytes, which the codec still reads.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, its key columns, whether its state may be NULL)
TABLES = (("streams", ("id",), True), ("series_states", ("series_id", "model_id"), False))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _, nullable in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("state", type_=sa.LargeBinary(), existing_type=sa.JSON(),
                               existing_nullable=nullable,
                               postgresql_using="convert_to(state::text, 'UTF8')")
        if not postgres:  # SQLite keeps a value's own type: make the JSON text bytes too
            op.execute(f"UPDATE {table} SET state = CAST(state AS BLOB) "
                       "WHERE typeof(state) = 'text'")


def downgrade() -> None:
    # The codec of the states the upgrade's successors wrote: only it can read them back.
    from app.ml.stream_state import decode, to_json

    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    for table, keys, nullable in TABLES:
        rows = bind.execute(sa.text(
            f"SELECT {', '.join(keys)}, state FROM {table} WHERE state IS NOT NULL")).all()
        match = " AND ".join(f"{key} = :{key}" for key in keys)
        update = sa.text(f"UPDATE {table} SET state = :state WHERE {match}")
        for row in rows:
            bind.execute(update, {**dict(zip(keys, row[:-1], strict=True)),
                                  "state": json.dumps(to_json(decode(row[-1]))).encode()})
        if not postgres:
            op.execute(f"UPDATE {table} SET state = CAST(state AS TEXT) "
                       "WHERE typeof(state) = 'blob'")
        with op.batch_alter_table(table) as batch:
            batch.alter_column("state", type_=sa.JSON(), existing_type=sa.LargeBinary(),
                               existing_nullable=nullable,
                               postgresql_using="convert_from(state, 'UTF8')::json")
