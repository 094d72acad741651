"""A model's state warmed over a series' stored history, kept per series and model.

Forecasting a series with a stateful model would otherwise replay the whole history on every
request. The warmed state is stored in `series_states` (so every replica shares it), advanced
over readings that arrived since, and dropped when older readings change.
"""

from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.readings import fetch_readings
from app.db.tables import Series, SeriesState
from app.errors import Conflict
from app.ml.features import CovariateTrack
from app.ml.forecaster import Forecaster
from app.ml.stream_seasonal import SeasonalSource
from app.ml.stream_state import State
from app.streams.seasonal_fits import forget_fits_from
from app.streams.sources import stepping_covariates, stepping_source
from app.timegrid import on_grid, to_index


def warm_over(forecaster: Forecaster, state: State, ts_s: np.ndarray, values: np.ndarray,
              freq: str, seasonal: SeasonalSource | None = None,
              network_covariates: CovariateTrack | None = None) -> State:
    """`state` advanced over stored readings (gaps become NaN steps the model fills; a network
    that reads covariates reads them from `network_covariates`)."""
    if len(ts_s) == 0:
        return state
    grid, full = on_grid(ts_s, values, freq)
    try:
        return forecaster.warm(full, to_index(grid), state, seasonal=seasonal,
                               network_covariates=network_covariates)
    except ValueError as exc:
        raise Conflict(f"The model cannot follow this series' history: {exc}") from None


@dataclass(frozen=True)
class HistoryRead:
    """What a forecast read: the stored warmed state (if any) and the readings after it."""

    series_id: int
    model_id: int
    freq: str
    name: str
    cached_state: State | None
    cached_last_ts: int | None
    ts: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class WarmedHistory:
    """The state after the last reading read; `changed` when it should be stored."""

    state: State
    last_ts: int | None
    changed: bool


def read_history(*, session: Session, forecaster: Forecaster, model_id: int, series: Series,
                 max_steps: int) -> HistoryRead:
    """The stored state of `model_id` on `series` and the readings it still has to follow
    (without one: the latest `max_steps` readings, to warm from a zero state).

    Deseasonalised stream models warm over at most `forecaster.stream_warm_steps` readings:
    each day costs a seasonal fit, and their small state forgets within days.
    """
    cached = session.get(SeriesState, (series.id, model_id))
    if cached is not None:
        ts, values = fetch_readings(session=session, series_id=series.id,
                                    start_s=cached.last_ts + 1)
    else:
        if forecaster.needs_seasonal:
            max_steps = min(max_steps, forecaster.stream_warm_steps)
        ts, values = fetch_readings(session=session, series_id=series.id, limit=max_steps,
                                    newest=True)
    return HistoryRead(series_id=series.id, model_id=model_id, freq=series.freq,
                       name=series.name, cached_state=cached.state if cached else None,
                       cached_last_ts=cached.last_ts if cached else None, ts=ts, values=values)


def warm_history(forecaster: Forecaster, read: HistoryRead,
                 seasonal: SeasonalSource | None = None,
                 network_covariates: CovariateTrack | None = None) -> WarmedHistory:
    """The model's state after the readings read: computation only (the seasonal source, for
    deseasonalised stream models, may read and store its fits)."""
    start = read.cached_state if read.cached_state is not None else \
        forecaster.initial(read.name)
    if len(read.ts) == 0:
        return WarmedHistory(state=start, last_ts=read.cached_last_ts, changed=False)
    state = warm_over(forecaster, start, read.ts, read.values, read.freq, seasonal,
                      network_covariates)
    return WarmedHistory(state=state, last_ts=int(read.ts[-1]), changed=True)


def store_state(*, session: Session, read: HistoryRead, warmed: WarmedHistory) -> bool:
    """Store a warmed state if nothing it was computed from changed since it was read.

    Call in a short write transaction of its own, after the computation: the stored row must
    still be the one read (compare-and-set on its `last_ts`), and the readings warmed over must
    be unchanged (a replaced value, a filled gap). Returns whether the state was stored; when
    not, the next forecast warms again, which is only slower.
    """
    if not warmed.changed or warmed.last_ts is None:
        return False
    ts, values = fetch_readings(session=session, series_id=read.series_id,
                                start_s=int(read.ts[0]), end_s=int(read.ts[-1]))
    if not (np.array_equal(ts, read.ts) and np.array_equal(values, read.values, equal_nan=True)):
        return False
    key = (SeriesState.series_id == read.series_id) & (SeriesState.model_id == read.model_id)
    if read.cached_last_ts is not None:
        result = session.execute(update(SeriesState).where(
            key & (SeriesState.last_ts == read.cached_last_ts)).values(
            state=warmed.state, last_ts=warmed.last_ts))
        return bool(result.rowcount)  # type: ignore[attr-defined]
    try:
        with session.begin_nested():
            session.add(SeriesState(series_id=read.series_id, model_id=read.model_id,
                                    state=warmed.state, last_ts=warmed.last_ts))
    except IntegrityError:
        return False  # another request stored a state first
    return True


def history_state(*, session: Session, forecaster: Forecaster, model_id: int, series: Series,
                  max_steps: int) -> tuple[State, SeasonalSource | None, CovariateTrack | None]:
    """The model's state after the series' last stored reading (warmed from at most
    `max_steps` readings, from a zero state), reusing and advancing the stored one, all in the
    caller's transaction (streams, which hold the stream's lock anyway); and what the model
    read (its seasonal source, and the covariates its network reads at each reading's time),
    which also serves the one-step forecast after that reading."""
    read = read_history(session=session, forecaster=forecaster, model_id=model_id,
                        series=series, max_steps=max_steps)
    first_s = int(read.ts[0]) if len(read.ts) else read.cached_last_ts
    last_s = int(read.ts[-1]) if len(read.ts) else read.cached_last_ts
    seasonal = stepping_source(session=session, series=series, forecaster=forecaster,
                               model_id=model_id, first_s=first_s, last_s=last_s)
    track = stepping_covariates(session=session, series=series, forecaster=forecaster,
                                model_id=model_id, first_s=first_s, last_s=last_s)
    warmed = warm_history(forecaster, read, seasonal, track)
    store_state(session=session, read=read, warmed=warmed)
    return warmed.state, seasonal, track


def forget_from(*, session: Session, series_id: int, first_changed_ts: int) -> None:
    """Drop warmed states that covered readings at or after `first_changed_ts`."""
    session.execute(delete(SeriesState).where(SeriesState.series_id == series_id,
                                              SeriesState.last_ts >= first_changed_ts))
    forget_fits_from(session=session, series_id=series_id, first_changed_ts=first_changed_ts)
