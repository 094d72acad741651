"""The tables, typed; the schema itself changes only through migrations/."""

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.ml.seasonal import SeasonalCycles, decode_cycles, encode_cycles
from app.ml.stream_state import State, decode, encode


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both databases (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class StoredState(TypeDecorator[State]):
    """A model's state in its compact binary form (`app.ml.stream_state`); rows stored in the
    older JSON form read as well."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: State | None, dialect: Dialect) -> bytes | None:
        return None if value is None else encode(value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], State | None]:
        # Not the binary type's own: a JSON row SQLite holds as text is no bytes.
        return lambda value: None if value is None else decode(value)


class StoredCycles(TypeDecorator[SeasonalCycles]):
    """A seasonal fit in its compact binary form (`app.ml.seasonal.encode_cycles`); rows stored
    in the older JSON form read as well."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: SeasonalCycles | None, dialect: Dialect) -> bytes | None:
        return None if value is None else encode_cycles(value)

    def result_processor(self, dialect: Dialect,
                         coltype: object) -> Callable[[Any], SeasonalCycles | None]:
        # Not the binary type's own: a JSON row SQLite holds as text is no bytes.
        return lambda value: None if value is None else decode_cycles(value)


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TenantReadings(Base):
    """Readings stored across a tenant's series: the sum of its shards, kept by every path that
    stores or deletes readings (app/db/reading_counts.py). The quota check reads it instead of
    counting rows."""

    __tablename__ = "tenant_readings"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    readings: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ApiKey(Base):
    """Only a SHA-256 of each key is stored; the key itself is shown once, at creation.

    `scope` is `read` (GET only) or `write`; a key past `expires_at` no longer authenticates;
    `last_used_at` is brought up to date at most once a minute.
    """

    __tablename__ = "api_keys"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    name: Mapped[str] = mapped_column(String(200), default="default", server_default="default")
    scope: Mapped[str] = mapped_column(String(8), default="write", server_default="write")
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Series(Base):
    __tablename__ = "series"
    # AUTOINCREMENT: SQLite would otherwise hand a deleted series' id to the next one created.
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_series_tenant_name"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    freq: Mapped[str] = mapped_column(String(32))
    # IANA zone of the series' local time (calendar inputs, daily seasons); readings stay UTC.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    unit: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    # A `holidays` package code (US, GB-ENG, AU-VIC) and extra days off, each {date, label}:
    # the calendar a model reads, known into any future.
    holidays: Mapped[str | None] = mapped_column(String(32))
    special_days: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list,
                                                               server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set anew, at random, by every write of the readings of a series read as a covariate
    # (app.db.readings_versions): processes keep its readings keyed by it (app.covariate_cache).
    readings_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class SeriesCovariate(Base):
    """A series reads another series of its tenant as the covariate `name` (temperature, ...).

    `known_future`: the covariate's readings past the series' last reading are its forecast, and
    a forecast reads them for every step ahead. A covariate series may have another frequency.
    """

    __tablename__ = "series_covariates"

    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Deleting a series that others read is refused by app.db.series.delete_series; the cascade
    # is for a tenant's deletion, which takes all its series at once.
    covariate_series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), index=True)
    known_future: Mapped[bool] = mapped_column(Boolean)


class Reading(Base):
    """One value of a series; `ts` is whole seconds since the Unix epoch, UTC.

    On PostgreSQL the table is partitioned by month of `ts` (migration 0009, app.db.partitions).

    Integer seconds rather than a DateTime column: exact on both databases, compact, and fast to
    bulk-load (no per-row datetime conversion), which the ingest path depends on.
    """

    __tablename__ = "readings"

    # No foreign key to series: checking one per row halves PostgreSQL's COPY speed;
    # app.db.series.delete_series removes a series' readings itself.
    series_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)


class ModelStatus(StrEnum):
    """A model's life: training -> ready | failed | cancelled."""

    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ForecastModel(Base):
    """A trained (or training) network: one version, immutable once ready.

    `status`: training -> ready | failed | cancelled. Files live in MODEL_DIR/<id>/ and the row
    turns ready only after they are complete.
    """

    __tablename__ = "forecast_models"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=ModelStatus.TRAINING)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    resolved_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Validation MASE worse than the seasonal naive's: kept, but never silently the default.
    worse_than_naive: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ModelSeries(Base):
    """Which series a model was trained on (a global model covers several), in order."""

    __tablename__ = "model_series"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("forecast_models.id", ondelete="CASCADE"), primary_key=True)
    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    """The queue and the record of background work: queued -> running -> a final status."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None on the service's own jobs (partition maintenance, seasonal fits): no tenant sees or
    # pays for them. A fit job keeps its model, so deleting the model deletes its jobs.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("forecast_models.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="train")
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Scheduled jobs are queued once per key however many workers schedule them at once.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkerBeat(Base):
    """A worker's heartbeat: it polled the queue at `last_poll_at` (readiness, /metrics)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_poll_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Stream(Base):
    """A live feed of one series with the model's state carried between requests.

    `state` is the forecaster's state (hidden state of every layer, or the last window);
    `next_forecast` is the one-step forecast and intervals made at the last reading, judged when
    the next reading arrives; `accuracy` holds the running sums behind the live metrics.
    """

    __tablename__ = "streams"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_streams_tenant_name"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    # The model in use; None once a pinned model was deleted (the stream then answers 409).
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("forecast_models.id", ondelete="SET NULL"), index=True)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[State | None] = mapped_column(StoredState)
    last_ts: Mapped[int | None] = mapped_column(BigInteger)
    readings_applied: Mapped[int] = mapped_column(Integer, default=0)
    next_forecast: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    accuracy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SeriesState(Base):
    """A model's state warmed over a series' stored history, so a forecast need not replay it.

    Dropped whenever readings at or before `last_ts` change; advanced as new readings arrive.
    """

    __tablename__ = "series_states"

    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("forecast_models.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[State] = mapped_column(StoredState)
    last_ts: Mapped[int] = mapped_column(BigInteger)


class SeasonalFit(Base):
    """One day's seasonal fit of a series for a deseasonalised stream model, shared by its streams.

    The fit reads the readings before `boundary_ts` (a day's start); it is stored as the last
    cycle of each period (a few hundred numbers), and dropped when readings before it change.
    """

    __tablename__ = "seasonal_fits"

    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("forecast_models.id", ondelete="CASCADE"), primary_key=True)
    boundary_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cycles: Mapped[SeasonalCycles] = mapped_column(StoredCycles)
    # Random, new each time the fit is made: replicas cache fits in memory keyed by it.
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
