"""The model spec a user submits, and its resolution against a series' frequency."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.timegrid import NS_PER_S, SECONDS_PER_DAY, parse_freq, step_seconds

Cell = Literal["lstm", "gru", "simple_rnn"]
Deseasonalize = Literal["mstl", "none"]
Loss = Literal["mae", "mse"]
CovariateInputs = Literal["profile", "network", "both"]

MIN_WINDOW_STEPS = 8
MAX_LAYERS = 4
# Upper bounds of the numeric fields: far above any recipe that trains well here, low enough that
# one job cannot take a worker for days or its memory with it.
MAX_UNITS = 1024
MAX_WINDOW_STEPS = 10_000
MAX_HORIZON_STEPS = 10_000
MAX_EPOCHS = 2_000
MAX_PATIENCE = 2_000
MAX_BATCH_SIZE = 8_192
MAX_CHUNK_STEPS = 10_000
MAX_BUDGET_S = 24 * 3600
MAX_SEED = 2**31 - 1
# Seconds an `auto` search may spend when the spec gives no `budget_s`.
DEFAULT_AUTO_BUDGET_S = 600
# Daily data has no within-day pattern; its season is the week.
DAYS_PER_WEEK = 7
DAYS_PER_YEAR = 365
DAYS_PER_YEAR_MEAN = 365.25


def _invalid(name: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"Received an invalid value for argument `{name}`, expected {expected}, got {got!r}.")


# Strict: a JSON `true`, `2.5` or `"4"` is refused, not read as 1, 2 or 4. Each field states both
# its bounds in its `Field`; an error names the field, the value received and the bound missed.
Int = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True)]
Flag = Annotated[bool, Field(strict=True)]


class ModelSpec(BaseModel):
    """What to train: the network, the inputs and the fitting schedule.

    Fields left as None depend on the series' frequency and are filled by `resolve_spec`.
    The defaults are the best recipe measured on half-hourly electricity demand (docs/accuracy.md):
    a small GRU over one day of the MSTL-deseasonalised series with a direct head of one day,
    MAE loss and early stopping. Not sure what to pick? Send `{"auto": true}`: it trains a few
    candidates within `budget_s` and keeps the one with the best validation MASE.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell: Cell = Field("gru", description="Recurrent cell: 'gru', 'lstm' or 'simple_rnn'.")
    units: Int = Field(16, ge=1, le=MAX_UNITS, description="Units per recurrent layer.")
    layers: Int = Field(1, ge=1, le=MAX_LAYERS)
    dropout: Number = Field(0.0, ge=0, lt=1)
    stateful: Flag | None = Field(
        None,
        description="A stream model that carries its RNN state from one reading to the next, one cell "
        "step per reading (default: true, unless `bidirectional` or network `covariate_inputs`). "
        "`false`: a window model that reads the last `window` readings at every forecast.",
    )
    bidirectional: Flag = False
    window: Int | None = Field(
        None, ge=MIN_WINDOW_STEPS, le=MAX_WINDOW_STEPS,
        description="Readings per input window (default: one day; daily data: two weeks)."
    )
    horizon: Int | None = Field(
        None, ge=1, le=MAX_HORIZON_STEPS,
        description="Steps of the direct head (default: one day; daily data: one week)."
    )
    calendar: Flag | None = Field(
        None,
        description="Time-of-day and day-of-week inputs (default: on for the raw series, off when "
        "deseasonalized: the seasonal component already carries the calendar).",
    )
    deseasonalize: Deseasonalize = Field(
        "mstl",
        description="'mstl': the model forecasts the series minus its MSTL seasonal component (periods "
        "one day and one week of readings, fitted on the data before each day), which the forecast "
        "adds back; 'none': the raw series.",
    )
    covariates: list[str] | None = Field(
        None,
        description="Names of the series' covariates the model reads (temperature...): None, all "
        "that the series names; [], none. `auto` may drop them if validation says so.",
    )
    covariate_inputs: CovariateInputs = Field(
        "profile",
        description="Where the covariates enter: 'profile', a regression profile the series is "
        "deseasonalised by (day type x time of day with the covariates' terms; the network reads "
        "none); 'network', the network's own inputs (each step's past value and a present flag, "
        "and the horizon's known-future values through a branch joined to its state before the "
        "head) over the MSTL-deseasonalised series; 'both'. With 'network' or 'both' the default "
        "is a window model; `stateful: true` trains a stream model, which steps each reading with "
        "the covariates' values at its time and forecasts with the horizon's.",
    )
    loss: Loss = Field("mae", description="Training loss: 'mae' (matches MASE) or 'mse'.")
    epochs: Int = Field(40, ge=1, le=MAX_EPOCHS)
    patience: Int = Field(
        8, ge=0, le=MAX_PATIENCE, description="Epochs without a better validation loss before stopping."
    )
    batch_size: Int = Field(64, ge=1, le=MAX_BATCH_SIZE)
    learning_rate: Number = Field(1e-3, gt=0, le=1.0)
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    chunk: Int | None = Field(None, ge=1, le=MAX_CHUNK_STEPS)
    validation_fraction: Number = Field(0.1, gt=0, lt=0.5)
    test_fraction: Number = Field(0.1, gt=0, lt=0.5)
    auto: Flag = Field(
        False,
        description="Search a few candidate specs (cells, sizes, window vs stream, bidirectional, "
        "deseasonalize on/off) within `budget_s` and keep the best by validation MASE; every candidate's "
        "score is stored in the model's metrics. What to use when you do not know what to pick.",
    )
    budget_s: Int | None = Field(
        None, ge=1, le=MAX_BUDGET_S,
        description=f"Seconds an `auto` search may spend (default {DEFAULT_AUTO_BUDGET_S})."
    )

    @property
    def is_stream(self) -> bool:
        """Whether this spec trains a stream (stateful) model: the default, unless bidirectional or
        the network reads covariates (`covariate_inputs`), where a window model scored better
        (docs/accuracy.md); `stateful: true` asks for a stream model in either case."""
        if self.stateful is not None:
            return self.stateful
        return not self.bidirectional and self.covariate_inputs == "profile"

    @model_validator(mode="after")
    def _check_combination(self) -> ModelSpec:
        if self.stateful is True and self.bidirectional:
            raise ValueError(
                "Received `stateful=True` with `bidirectional=True`, expected at most one of them: "
                "a bidirectional layer reads the future of its window, so it cannot carry state "
                "forward one reading at a time."
            )
        if self.chunk is not None and not self.is_stream:
            raise ValueError(
                f"Received `chunk={self.chunk}` with `stateful=False`, expected `chunk` only for "
                "stateful models (it is their truncated BPTT length)."
            )
        if self.budget_s is not None and not self.auto:
            raise ValueError(
                f"Received `budget_s={self.budget_s}` with `auto=False`, expected `budget_s` only with "
                "`auto=True` (it bounds the search)."
            )
        return self


@dataclass(frozen=True)
class ResolvedSpec:
    """A `ModelSpec` with every frequency-dependent default filled in."""

    cell: Cell
    units: int
    layers: int
    dropout: float
    stateful: bool
    bidirectional: bool
    window: int
    horizon: int
    calendar: bool
    deseasonalize: Deseasonalize
    loss: Loss
    epochs: int
    patience: int
    batch_size: int
    learning_rate: float
    seed: int
    chunk: int
    validation_fraction: float
    test_fraction: float
    auto: bool
    budget_s: int | None
    freq: str
    steps_per_day: float
    seasonal_period: int
    # The covariates the model reads: the spec's list, or every covariate of the series.
    covariates: tuple[str, ...] = ()
    covariate_inputs: CovariateInputs = "profile"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResolvedSpec:
        # Models saved before these fields existed read the raw series with an MSE loss.
        defaults = {"deseasonalize": "none", "loss": "mse", "auto": False, "budget_s": None}
        fields = {**defaults, **data}
        fields["covariates"] = tuple(fields.get("covariates") or ())
        return cls(**fields)


def freq_seconds(freq: str) -> float:
    """Seconds between readings for a pandas offset alias ("15min", "h", "D", "W-SAT", "MS"...);
    the mean step for calendar frequencies (a month: 365.25 / 12 days)."""
    try:
        with warnings.catch_warnings():
            # pandas warns on deprecated spellings ("H", "T"); accept only current aliases.
            warnings.simplefilter("error", FutureWarning)
            pd.tseries.frequencies.to_offset(freq)
        parse_freq(freq)  # and a grid of whole seconds
    except (ValueError, TypeError, FutureWarning):
        raise _invalid(
            "freq", "a pandas offset alias such as '15min', '30min', 'h', 'D', 'W-SUN' or 'MS'", freq
        ) from None
    step_s = step_seconds(freq)
    return float(step_s) if step_s is not None else _mean_step_s(freq)


@lru_cache(maxsize=64)
def _mean_step_s(freq: str) -> float:
    # Any 400 years hold 97 leap days: the mean of a calendar step over them is its true mean.
    stamps = pd.date_range("1850-01-01", "2249-12-31", freq=parse_freq(freq))
    span_ns = int(stamps.asi8[-1]) - int(stamps.asi8[0])  # 400 years overflow int64 ns
    return span_ns / NS_PER_S / (len(stamps) - 1)


def seasonal_period(freq: str) -> int:
    """Readings per season: one day for sub-daily data, one week for daily data, one year for
    longer steps (weekly: 52, monthly: 12, quarterly: 4; 1, no season, for yearly data)."""
    step_s = freq_seconds(freq)
    if step_s > SECONDS_PER_DAY:
        return max(1, round(DAYS_PER_YEAR_MEAN * SECONDS_PER_DAY / step_s))
    if step_s == SECONDS_PER_DAY:
        return DAYS_PER_WEEK
    per_day = SECONDS_PER_DAY / step_s
    if per_day != int(per_day):
        raise _invalid("freq", "a frequency that divides one day evenly", freq)
    return int(per_day)


def baseline_lags(freq: str) -> tuple[int, ...]:
    """Lags of the seasonal naives the baseline is chosen from (`evaluation.choose_baseline`):
    one day and one week of readings for sub-daily data, a week and a year for daily data, the
    year for longer steps."""
    step_s = freq_seconds(freq)
    if step_s > SECONDS_PER_DAY:
        return (seasonal_period(freq),)
    if step_s == SECONDS_PER_DAY:
        return (DAYS_PER_WEEK, DAYS_PER_YEAR)
    per_day = seasonal_period(freq)
    return (per_day, DAYS_PER_WEEK * per_day)


def resolve_spec(spec: ModelSpec, freq: str, covariates: tuple[str, ...] = ()) -> ResolvedSpec:
    """Fill the frequency-dependent defaults of `spec` for readings every `freq`; `covariates`
    are the names the series offer (the spec's `covariates: None` takes them all)."""
    period = seasonal_period(freq)
    steps_per_day = SECONDS_PER_DAY / freq_seconds(freq)
    # One day of readings; daily data gets two weeks so that the window sees a weekly cycle.
    default_window = period if steps_per_day > 1 else 2 * period
    window = spec.window if spec.window is not None else max(MIN_WINDOW_STEPS, default_window)
    chunk = spec.chunk if spec.chunk is not None else window
    deseasonalize = spec.deseasonalize
    # A stream model steps by a fixed duration; weeks, months and quarters are calendar steps, so
    # their default is a window model (asking for a stream model there is refused by the API).
    fixed_step = isinstance(pd.tseries.frequencies.to_offset(freq), pd.offsets.Tick)
    stateful = spec.is_stream if spec.stateful is not None else spec.is_stream and fixed_step
    fields = spec.model_dump()
    fields.update(
        stateful=stateful,
        window=window,
        chunk=chunk,
        # One season ahead: a day of readings, a week for daily data.
        horizon=spec.horizon if spec.horizon is not None else period,
        deseasonalize=deseasonalize,
        calendar=spec.calendar if spec.calendar is not None else deseasonalize == "none",
        freq=freq,
        steps_per_day=steps_per_day,
        seasonal_period=period,
        covariates=tuple(spec.covariates) if spec.covariates is not None else tuple(covariates),
    )
    return ResolvedSpec(**fields)
