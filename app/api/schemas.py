"""Request and response bodies of the API."""

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
