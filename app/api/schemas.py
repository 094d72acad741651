"""Request and response bodies of the API."""

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    series_ids: list[int] = Field(min_length=1, max_length=100, examples=[[1]])
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
