"""Request and response bodies of the API."""

import datetime as dt
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from app.api.params import STREAM_ID_PATTERN, Id, Text
from app.db.tenants import KeyScope
from app.ingest import MAX_ABS_READING, within_timestamp_range
from app.ml import spec as ml_spec
from app.ml.calendar import check_holidays_code
from app.timegrid import canonical_freq, checked_timezone

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int = Field(description="How many there are in all, beyond this page too.")


# A covariate's name: the key of its values in a forecast's body, so an identifier.
COVARIATE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
CovariateName = Annotated[str, Field(pattern=COVARIATE_NAME_PATTERN, examples=["temperature"])]
MAX_COVARIATES = 20
MAX_SPECIAL_DAYS = 1000


class CovariateLinkIn(BaseModel):
    """Another series of yours that this series' models read, under a name."""

    model_config = ConfigDict(extra="forbid")

    series_id: Id = Field(description="The covariate series (any frequency: its readings are "
                          "aligned to this series' grid).")
    name: CovariateName = Field(description="The covariate's name in model specs and in a "
                                "forecast's inline `covariates`.")
    known_future: bool = Field(
        default=True, description="true: the covariate's readings past this series' last "
        "reading are its forecast (weather), and a forecast needs them for every step ahead; "
        "false: only its past is read.")


class SpecialDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date = Field(description="A day, in the series' local time.")
    label: Text = Field(min_length=1, max_length=200, examples=["plant shutdown"])


def _distinct_special_days(days: list[SpecialDayIn]) -> list[SpecialDayIn]:
    dates = [d.date for d in days]
    repeated = sorted({d for d in dates if dates.count(d) > 1})
    if repeated:
        raise ValueError(f"each date may appear once; {repeated[0].isoformat()} repeats")
    return days


def _known_holidays(code: str | None) -> str | None:
    return None if code is None else check_holidays_code(code)


class SeriesCalendarIn(BaseModel):
    """The fields a series' calendar and covariates are set with, on create and update."""

    covariates: list[CovariateLinkIn] = Field(
        default=[], max_length=MAX_COVARIATES,
        description="Series this series' models read (names must differ). On update, the new "
                    "list replaces the old one.")
    holidays: Text | None = Field(
        default=None, max_length=32, examples=["US", "GB-ENG", "AU-VIC"],
        description="Public holidays of a country, optionally with a subdivision, as the "
                    "`holidays` package names them; null for none.")
    special_days: list[SpecialDayIn] = Field(
        default=[], max_length=MAX_SPECIAL_DAYS,
        description="Extra days the calendar treats as holidays (a plant shutdown), one per "
                    "date.")

    @field_validator("holidays")
    @classmethod
    def _known_holidays(cls, value: str | None) -> str | None:
        return _known_holidays(value)

    @field_validator("special_days")
    @classmethod
    def _distinct_days(cls, value: list[SpecialDayIn]) -> list[SpecialDayIn]:
        return _distinct_special_days(value)


class SeriesCreate(SeriesCalendarIn):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "ew-demand", "freq": "30min", "unit": "MW",
         "description": "England and Wales electricity demand"},
        {"name": "utility-load", "freq": "h", "holidays": "US",
         "covariates": [{"series_id": 7, "name": "temperature", "known_future": True}],
         "special_days": [{"date": "2024-12-27", "label": "plant shutdown"}]}]})

    name: Text = Field(min_length=1, max_length=200, examples=["building-7"])
    freq: str = Field(max_length=40, description="A pandas offset alias: 15min, 30min, h, D, "
                      "W-SUN...", examples=["30min"])
    timezone: Text = Field(default="UTC", max_length=64, examples=["Europe/London"],
                           description="IANA zone of the series' local time: calendar inputs, "
                           "daily seasons and the dashboard follow it; readings are stored in UTC.")
    unit: Text | None = Field(default=None, max_length=64, examples=["kWh"])
    description: Text | None = Field(default=None, max_length=10_000)

    @field_validator("freq")
    @classmethod
    def _known_freq(cls, value: str) -> str:
        return canonical_freq(value)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return checked_timezone(value)


class SeriesUpdate(SeriesCalendarIn):
    """Change a series: only the fields sent change (`covariates` and `special_days` are
    replaced as a whole; `"holidays": null` removes the holidays)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"covariates": [{"series_id": 7, "name": "temperature", "known_future": True}],
         "holidays": "US"},
        {"description": "Main building, from the new meter", "special_days": []}]})

    name: Text = Field(default="", min_length=1, max_length=200, examples=["building-7"])
    unit: Text | None = Field(default=None, max_length=64)
    description: Text | None = Field(default=None, max_length=10_000)


class CovariateLinkPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    series_id: int = Field(validation_alias=AliasChoices("covariate_series_id", "series_id"))
    name: str
    known_future: bool


class SpecialDay(BaseModel):
    date: dt.date
    label: str


class SeriesPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    freq: str
    timezone: str
    unit: str | None
    description: str | None
    covariates: list[CovariateLinkPublic] = []
    holidays: str | None = None
    special_days: list[SpecialDay] = []
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


class CovariateUploaded(BaseModel):
    """What a covariate column of an upload stored in its covariate series."""

    name: str
    series_id: int
    received: int = Field(description="Cells with a value (empty cells store nothing).")
    inserted: int
    updated: int
    unchanged: int


class UploadResult(BaseModel):
    received: int
    inserted: int
    updated: int
    unchanged: int
    first_ts: datetime
    last_ts: datetime
    covariates: list[CovariateUploaded] = Field(
        default=[], description="One per column of `covariate_cols`.")


# What the spec's fields without a description of their own mean in the API reference; a test
# checks that every field of the spec is described, by app/ml/spec.py or here.
SPEC_FIELD_DESCRIPTIONS = {
    "units": "Units per recurrent layer.",
    "layers": "Stacked recurrent layers.",
    "dropout": "Dropout between recurrent layers, in [0, 1).",
    "bidirectional": "Read each input window both ways (window models only, not `stateful`).",
    "epochs": "Most passes over the training data; early stopping may end sooner.",
    "batch_size": "Windows (or stateful segments) per gradient step.",
    "learning_rate": "Adam's learning rate.",
    "seed": "Random seed of weights and shuffling: the same spec and data train the same model.",
    "chunk": "Truncated backpropagation steps of a `stateful` model (default: its `window`).",
    "validation_fraction": "Share of each series, before the test part, held out for early "
                           "stopping and model choice.",
    "test_fraction": "Share at the end of each series held out for the test metrics.",
}


def _describe_spec_fields(schema: dict[str, Any]) -> None:
    for name, field in schema.get("properties", {}).items():
        if "description" not in field and name in SPEC_FIELD_DESCRIPTIONS:
            field["description"] = SPEC_FIELD_DESCRIPTIONS[name]


class ModelSpec(ml_spec.ModelSpec):
    __doc__ = ml_spec.ModelSpec.__doc__

    # The ML core's spec as the API documents it: the same fields and checks, with a description
    # for each field (kept here so that app/ml stays free of API wording).
    model_config = ConfigDict(json_schema_extra=_describe_spec_fields)


class ModelCreate(BaseModel):
    """Train a model: one series, or several of one frequency for one global model."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"series_ids": [1], "spec": {"epochs": 5}},
        {"series_ids": [1], "spec": {"cell": "lstm", "units": 32, "stateful": True}},
        {"series_ids": [1, 2], "spec": {"auto": True, "budget_s": 300}}]})

    series_ids: list[Id] = Field(min_length=1, max_length=100, examples=[[1]])
    spec: ModelSpec = Field(default_factory=ModelSpec,
                            description="What to train; every field has a default.")


class JobProgress(BaseModel):
    phase: Literal["starting", "training"] = Field(
        "training", description="starting: the worker's training process is loading TensorFlow "
                                "and the data; training: epochs are running.")
    epoch: int = 0
    epochs: int | None = None
    loss: float | None = None
    val_loss: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
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


class _Reading(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: datetime = Field(description="On the series' grid; UTC when no zone is given.")
    # Strict: a number or null, never `true` or "1" (uploads refuse them too).
    value: float | None = Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_READING, le=MAX_ABS_READING,
                                description="null for a missing reading")


class ReadingIn(_Reading):
    @field_validator("ts")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        return within_timestamp_range(value)


# One post's readings of one series or stream.
MAX_READINGS = 1_000_000


class ReadingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"readings": [{"ts": "2000-08-28T00:00:00Z", "value": 23100},
                      {"ts": "2000-08-28T00:30:00Z", "value": 22870.5}]}]})

    readings: list[ReadingIn] = Field(min_length=1, max_length=MAX_READINGS)


# Stream ids that are literal paths under /v1/streams: a stream with one could not be reached.
RESERVED_STREAM_IDS = frozenset({"readings"})
# A fleet's half-hour: one reading from each of 50,000 meters, about 4 MB of JSON.
MAX_BULK_READINGS = 50_000


class StreamReadingIn(_Reading):
    """A reading of one stream among many. Its time's range is checked by the route, for all
    readings at once: a validator per reading cost 9 us each, 90 ms for a fleet's post."""

    stream_id: str = Field(pattern=STREAM_ID_PATTERN, description="The stream's id")


class StreamReadingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"readings": [{"stream_id": "meter-1", "ts": "2000-08-28T00:30:00Z", "value": 23100},
                      {"stream_id": "meter-2", "ts": "2000-08-28T00:30:00Z", "value": 812.5}]}]})

    readings: list[StreamReadingIn] = Field(min_length=1, max_length=MAX_BULK_READINGS)


class StreamResult(BaseModel):
    stream_id: str
    status: Literal["applied", "refused"]
    applied: int = Field(description="Readings applied to the state now.")
    duplicates: int = Field(description="Re-sent readings acknowledged, not applied again.")
    filled: int = Field(description="Missing steps filled with the model's own forecasts.")
    rewarmed: str | None = Field(description="Why the stream restarted from history, if it did.")
    last_ts: datetime | None
    next_forecast: dict[str, Any] | None
    error: dict[str, Any] | None = Field(
        description="Why the stream's readings were refused (none of them was applied): "
                    "status, title, detail and errors, as a problem+json would say it.")


class StreamsPosted(BaseModel):
    applied: int
    duplicates: int
    refused: int = Field(description="Readings of refused streams.")
    streams: list[StreamResult] = Field(description="One per stream, in order of first mention.")


ForecastMode = Literal["covariates", "no_covariates"]
Fallback = Literal["no_covariates"]
FALLBACK_DESCRIPTION = (
    "no_covariates: when the covariates do not cover the horizon, forecast with the series' "
    "default among its models that read none (the answer's `mode` and `model_id` say so), "
    "instead of a 422")


class ForecastOut(BaseModel):
    series_id: int
    model_id: int
    freq: str
    mode: ForecastMode = Field(
        description="covariates: the model read the covariates named in `covariates`; "
                    "no_covariates: it reads none (a fallback says so in `warning`).")
    covariates: list[str] = Field(description="The covariates the forecast read.")
    points: list[dict[str, Any]] = Field(
        description="ts, mean, and lower_<level>/upper_<level> for each level asked")
    worse_than_naive: bool = Field(
        description="The model loses to the seasonal naive on validation data.")
    warning: str | None = None


FiniteValue = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS_READING,
                                     le=MAX_ABS_READING)]


class ForecastIn(BaseModel):
    """A forecast with the known-future covariates given inline (your own weather feed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"horizon": 3, "covariates": {"temperature": [41.5, 40.25, 39.0]}},
        {"horizon": 48, "level": [80], "fallback": "no_covariates"}]})

    horizon: int = Field(default=48, ge=1, le=ml_spec.MAX_HORIZON_STEPS,
                         description="Steps ahead, on the series' grid")
    level: list[int] = Field(default=[80, 95], min_length=1, max_length=10,
                             description="Interval levels in percent (80, 95)")
    model_id: Id | None = Field(default=None, description="A model of this series (default: "
                                "the series' default)")
    covariates: dict[CovariateName, Annotated[list[FiniteValue], Field(
        max_length=ml_spec.MAX_HORIZON_STEPS)]] = Field(
        default={}, max_length=MAX_COVARIATES,
        description="Per known-future covariate the model reads, one value per step ahead "
                    "(`horizon` values, no null); covariates not given are read from their "
                    "stored readings.")
    fallback: Fallback | None = Field(default=None, description=FALLBACK_DESCRIPTION)


class StreamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"series_id": 1, "stream_id": "meter-1"}, {"series_id": 1, "model_id": 3}]})

    series_id: Id
    model_id: Id | None = Field(
        default=None, description="Pin a model; without it the stream follows the series' default.")
    stream_id: str | None = Field(default=None, pattern=STREAM_ID_PATTERN,
                                  description="Your own id for the stream (else one is made); "
                                              "not `readings`, the bulk post's path.")

    @field_validator("stream_id")
    @classmethod
    def _not_a_route(cls, value: str | None) -> str | None:
        if value in RESERVED_STREAM_IDS:
            raise ValueError(f"{value!r} is the path of another route; choose another id")
        return value


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
        description="Live accuracy since the last (re)warm: MAE, MASE, MAE beside two "
                    "baselines at the same one-step lead (`relative_mae`: the seasonal naive, "
                    "`relative_mae_persistence`: persistence, the reading one step earlier; "
                    "`baselines` names them), and coverage of the 80% and 95% intervals.")
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


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "ingest-2027", "scope": "write"},
        {"name": "dashboard", "scope": "read", "expires_at": "2099-12-31T00:00:00Z"}]})

    name: Text = Field(min_length=1, max_length=200, description="What the key is for.")
    scope: KeyScope = Field(default=KeyScope.WRITE,
                            description="read: GET requests only; write: everything.")
    expires_at: datetime | None = Field(
        default=None, description="When the key stops working (UTC if no zone); never if null.")

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if aware <= datetime.now(UTC):
            raise ValueError("must be in the future")
        if aware.year > 9000:
            raise ValueError("must be before the year 9000")
        return aware


class KeyPublic(BaseModel):
    """A key as listed: never the key itself, which is shown once, when it is created."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scope: KeyScope
    created_at: datetime
    last_used_at: datetime | None = Field(description="Brought up to date at most once a minute.")
    expires_at: datetime | None
    current: bool = Field(default=False, description="The key this request was made with.")


class KeyCreated(KeyPublic):
    key: str = Field(description="The key: shown this once, never stored or shown again.")
