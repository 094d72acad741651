"""The monthly partitions of `readings` on PostgreSQL: listed, created ahead, split, dropped.

`readings` is partitioned by range of `ts` (migration 0009), one partition per calendar month in
UTC, named `readings_pYYYYMM`, beside a DEFAULT partition that takes any reading no month's
partition covers yet, so an insert never fails when maintenance is late. Maintenance
(`app/worker/maintenance_task.py`) creates the coming months' partitions and moves whatever the
DEFAULT partition holds into partitions of its own months; retention drops whole months.
SQLite keeps one table and none of this applies.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

PARENT = "readings"
DEFAULT_PARTITION = "readings_default"
PREFIX = "readings_p"
_BOUND = re.compile(r"FOR VALUES FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True)
class Partition:
    """One month's partition: readings with `start_s <= ts < end_s`."""

    name: str
    start_s: int
    end_s: int


def month_start(ts_s: int) -> datetime:
    moment = datetime.fromtimestamp(ts_s, UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return month.replace(year=index // 12, month=index % 12 + 1)


def month_partition(ts_s: int) -> Partition:
    """The partition that holds a reading at `ts_s`."""
    start = month_start(ts_s)
    return Partition(name=f"{PREFIX}{start:%Y%m}", start_s=int(start.timestamp()),
                     end_s=int(add_months(start, 1).timestamp()))


def is_partitioned(connection: Connection) -> bool:
    """Whether `readings` is a partitioned table here (PostgreSQL after migration 0009)."""
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (PARENT,)).scalar()
    return bool(kind == "p")


def list_partitions(connection: Connection) -> list[Partition]:
    """The month partitions attached to `readings`, oldest first (not the DEFAULT one)."""
    rows = connection.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        (PARENT,)).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound)
        if match:
            found.append(Partition(name=name, start_s=int(match[1]), end_s=int(match[2])))
    return sorted(found, key=lambda p: p.start_s)


def default_months(connection: Connection) -> list[Partition]:
    """The months of the readings the DEFAULT partition holds (maintenance was late for them)."""
    starts = connection.exec_driver_sql(
        "SELECT DISTINCT extract(epoch FROM date_trunc('month', to_timestamp(ts) "
        f"AT TIME ZONE 'UTC'))::bigint FROM {DEFAULT_PARTITION}").scalars().all()
    return sorted((month_partition(int(s)) for s in starts), key=lambda p: p.start_s)


def attach_month(connection: Connection, partition: Partition) -> int:
    """Create `partition`, moving into it the DEFAULT partition's readings of its month.

    One transaction (the caller's): the DEFAULT partition is locked first, so a reading of the
    month inserted meanwhile waits and then goes to the new partition. The CHECK constraint
    lets ATTACH skip scanning the new partition. Returns the readings moved.
    """
    name, start, end = partition.name, partition.start_s, partition.end_s
    connection.exec_driver_sql(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
    connection.exec_driver_sql(
        f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    moved = connection.exec_driver_sql(
        f'WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= {start} AND ts < {end} '
        f'RETURNING series_id, ts, value) INSERT INTO "{name}" SELECT * FROM moved').rowcount
    connection.exec_driver_sql(
        f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_range" CHECK (ts >= {start} AND ts < {end})')
    connection.exec_driver_sql(
        f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" FOR VALUES FROM ({start}) TO ({end})')
    connection.exec_driver_sql(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_range"')
    return int(moved or 0)


def drop_partition(connection: Connection, partition: Partition) -> None:
    """Drop a whole month of readings (retention); the caller has checked none is needed."""
    connection.exec_driver_sql(f'DROP TABLE "{partition.name}"')
