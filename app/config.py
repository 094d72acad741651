"""Every setting of the service, read from the environment (prefix `STATECAST_`)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Settings of the API, the workers and the command line; one instance per process."""

    model_config = SettingsConfigDict(env_prefix="STATECAST_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./data/statecast.db",
        description="SQLAlchemy URL: the embedded SQLite file, or postgresql+psycopg://...",
    )
    database_lock_timeout_s: float = Field(
        default=10.0, gt=0, le=600,
        description="How long a statement waits for another transaction's lock before the API "
                    "answers 503 (SQLite busy timeout, PostgreSQL lock_timeout).",
    )
    model_dir: Path = Field(default=Path("./models"), description="Where trained model files live.")
    host: str = Field(default="127.0.0.1", description="Address `statecast serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `statecast serve` listens on.")
    api_processes: int = Field(
        default=1, ge=1, le=64,
        description="API processes `statecast serve` runs on its one port (uvicorn workers).",
    )
    max_upload_bytes: int = Field(
        default=64 * MIB, gt=0, description="Largest request body accepted (413 above it)."
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0,
        description="`statecast serve` closes a connection whose request head (line and headers) "
                    "takes longer than this to arrive.",
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0,
        description="Longest wait for the next chunk of a request body (408 after it).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level of log lines written."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="Log lines as JSON objects (one per line) or plain text."
    )
    auto_migrate: bool = Field(
        default=True,
        description="`statecast serve` upgrades the schema at start (off where a migrate step runs).",
    )
    key_file: Path = Field(
        default=Path("./data/api_key"),
        description="Where `statecast serve` writes the first API key it creates (mode 0600).",
    )

    embedded_workers: int = Field(
        default=1, ge=0, le=16,
        description="Worker processes `statecast serve` starts beside the API (0: none).",
    )
    job_lease_s: float = Field(
        default=30.0, gt=0, description="A claimed job's lease; its worker renews it every third."
    )
    job_max_attempts: int = Field(
        default=3, ge=1, le=20, description="Tries of a job whose worker crashed before failing it."
    )
    job_time_limit_s: float = Field(
        default=3600.0, gt=0, description="A training job running longer than this is failed."
    )
    worker_poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often an idle worker looks for queued jobs."
    )
    worker_stale_after_s: float = Field(
        default=10.0, gt=0,
        description="No worker polled the queue for this long while jobs wait: /readyz fails.",
    )

    tenant_requests_per_s: float = Field(
        default=100.0, ge=0,
        description="Requests a second one tenant may make, in bursts of twice that (429 above "
                    "it; 0: no limit). Counted per API process.",
    )
    tenant_max_active_jobs: int = Field(
        default=20, ge=1, description="Queued plus running jobs one tenant may have (429 above it).",
    )
    tenant_max_readings: int = Field(
        default=100_000_000, ge=1,
        description="Readings one tenant may store across its series (uploads past it get 429).",
    )
    large_upload_bytes: int = Field(
        default=8 * MIB, gt=0,
        description="Uploads at least this large count against max_large_uploads; a CSV body "
                    "of short fields counts each field as 8 bytes (its parse cost).",
    )
    max_csv_columns: int = Field(
        default=64, ge=2, le=10_000,
        description="Columns a CSV upload may have (422 above it): each column costs the "
                    "parser far more than its bytes.",
    )
    max_large_uploads: int = Field(
        default=2, ge=1,
        description="Large uploads one API process parses at once; more get 503 with "
                    "Retry-After (bounds the memory of concurrent large bodies).",
    )

    model_cache_size: int = Field(
        default=16, ge=1, description="Loaded models kept per API process (least recently used go)."
    )
    seasonal_fit_cache_bytes: int = Field(
        default=32 * 2**20, ge=0,
        description="Bytes of seasonal fits (one per series, model and day, ~2 KB each for "
                    "half-hourly data) kept decoded per API process; stream posts read them.",
    )
    max_forecast_horizon_steps: int = Field(
        default=1344, ge=1, le=10_000,
        description="Largest forecast horizon in steps (422 above it); the default is four weeks "
                    "of half-hours, four weekly seasons.",
    )
    stream_warm_steps: int = Field(
        default=20_000, ge=1,
        description="Readings of stored history a new stream (or forecast state) is warmed over.",
    )
    readings_retention_days: int | None = Field(
        default=None, ge=1,
        description="PostgreSQL: whole months of readings older than this many days are dropped, "
                    "except readings a training job or a stream's warm-up still needs "
                    "(docs/operations.md); unset keeps every reading.",
    )
    stream_max_gap: int = Field(
        default=96, ge=0,
        description="Missing steps a stream fills with its own forecasts before asking to re-warm.",
    )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
