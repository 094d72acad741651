"""Request and response bodies of the API."""

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.params import Id
from app.ml.spec import ModelSpec
from app.timegrid import canonical_freq

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int = Field(description="How many there are in all, beyond this page too.")


class SeriesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["building-7"])
    freq: str = Field(description="A pandas offset alias: 15min, 30min, h, D, W-SUN...",
                      examples=["30min"])
    unit: str | None = Field(default=None, max_length=64, examples=["kWh"])
    description: str | None = Field(default=None, max_length=10_000)

    @field_validator("freq")
    @classmethod
    def _known_freq(cls, value: str) -> str:
        return canonical_freq(value)


class SeriesPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    freq: str
    unit: str | None
    description: str | None
    created_at: datetime


class SeriesDetail(SeriesPublic):
    readings: int = Field(description="Stored readings, missing ones included.")
    first_ts: datetime | None
    last_ts: datetime | None


class Reading(BaseModel):
    ts: datetime
    value: float | None


class ReadingsPage(BaseModel):
    series_id: int
    data: list[Reading]
    count: int


class UploadResult(BaseModel):
    received: int
    inserted: int
    updated: int
    unchanged: int
    first_ts: datetime
    last_ts: datetime


class ModelCreate(BaseModel):
    """Train a model: one series, or several of one frequency for one global model."""

    model_config = ConfigDict(extra="forbid")

    series_ids: list[Id] = Field(min_length=1, max_length=100, examples=[[1]])
    spec: ModelSpec = Field(default_factory=ModelSpec,
                            description="What to train; every field has a default.")


class JobProgress(BaseModel):
    epoch: int
    epochs: int
    loss: float | None
    val_loss: float | None
    elapsed_s: float
    eta_s: float
    history: list[dict[str, float | None]] = []


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    model_id: int
    kind: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    attempts: int
    max_attempts: int
    cancel_requested: bool
    progress: JobProgress | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ModelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str = Field(description="training, ready, failed or cancelled")
    series_ids: list[int]
    spec: dict[str, Any] = Field(description="The spec as submitted.")
    resolved_spec: dict[str, Any] | None = Field(
        description="The spec with every frequency-dependent default filled in.")
    metrics: dict[str, Any] | None = Field(
        description="Test-part accuracy beside the seasonal-naive baseline, and interval coverage.")
    worse_than_naive: bool
    is_default: bool = False
    error: str | None
    created_at: datetime
    ready_at: datetime | None
    promoted_at: datetime | None


class ModelAccepted(BaseModel):
    model: ModelPublic
    job: JobPublic


class ReadingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: datetime = Field(description="On the series' grid; UTC when no zone is given.")
    value: float | None = Field(allow_inf_nan=False, description="null for a missing reading")


class ReadingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    readings: list[ReadingIn] = Field(min_length=1, max_length=1_000_000)


class ForecastPoint(BaseModel):
    ts: datetime
    mean: float
    lower_80: float | None = None
    upper_80: float | None = None
    lower_95: float | None = None
    upper_95: float | None = None


class ForecastOut(BaseModel):
    series_id: int
    model_id: int
    freq: str
    points: list[dict[str, Any]] = Field(
        description="ts, mean, and lower_<level>/upper_<level> for each level asked")
    worse_than_naive: bool = Field(
        description="The model loses to the seasonal naive on validation data.")
    warning: str | None = None


class StreamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series_id: Id
    model_id: Id | None = Field(
        default=None, description="Pin a model; without it the stream follows the series' default.")
    stream_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,200}$",
                                  description="Your own id for the stream (else one is made).")


class StreamPublic(BaseModel):
    id: str
    series_id: int
    model_id: int | None
    pinned: bool
    last_ts: datetime | None
    readings_applied: int
    next_forecast: dict[str, Any] | None = Field(
        description="The one-step forecast and intervals for the next reading.")
    accuracy: dict[str, Any] = Field(
        description="Live accuracy since the last (re)warm: MAE, MASE, MAE relative to the "
                    "seasonal naive, and coverage of the 80% and 95% intervals.")
    created_at: datetime
    updated_at: datetime


class StreamPosted(BaseModel):
    stream_id: str
    applied: list[str] = Field(description="Timestamps applied to the state now.")
    duplicates: list[str] = Field(description="Re-sent readings acknowledged, not applied again.")
    filled: list[str] = Field(description="Missing steps filled with the model's own forecasts.")
    rewarmed: str | None = Field(description="Why the stream restarted from history, if it did.")
    last_ts: datetime | None
    readings_applied: int
    forecast: list[dict[str, Any]]
