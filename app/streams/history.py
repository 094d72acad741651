"""A model's state warmed over a series' stored history, kept per series and model.

Forecasting a series with a stateful model would otherwise replay the whole history on every
request. The warmed state is stored in `series_states` (so every replica shares it), advanced
over readings that arrived since, and dropped when older readings change.
"""

import numpy as np
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.readings import fetch_readings
from app.db.tables import Series, SeriesState
from app.errors import Conflict
from app.ml.forecaster import Forecaster
from app.ml.stream_seasonal import SeasonalSource
from app.streams.seasonal_fits import forget_fits_from, seasonal_source
from app.timegrid import on_grid, to_index


def warm_over(forecaster: Forecaster, state: dict, ts_s: np.ndarray, values: np.ndarray,
              freq: str, seasonal: SeasonalSource | None = None) -> dict:
    """`state` advanced over stored readings (gaps become NaN steps the model fills)."""
    if len(ts_s) == 0:
        return state
    grid, full = on_grid(ts_s, values, freq)
    try:
        return forecaster.warm(full, to_index(grid), state, seasonal=seasonal)
    except ValueError as exc:
        raise Conflict(f"The model cannot follow this series' history: {exc}") from None


def history_state(*, session: Session, forecaster: Forecaster, model_id: int, series: Series,
                  max_steps: int) -> dict:
    """The model's state after the series' last stored reading (warmed from at most
    `max_steps` readings, from a zero state), reusing and advancing the stored one.

    Deseasonalised stream models warm over at most `forecaster.stream_warm_steps` readings:
    each day costs a seasonal fit, and their small state forgets within days.
    """
    seasonal = seasonal_source(session=session, series=series, model_id=model_id,
                               forecaster=forecaster)
    cached = session.get(SeriesState, (series.id, model_id))
    if cached is not None:
        ts, values = fetch_readings(session=session, series_id=series.id,
                                    start_s=cached.last_ts + 1)
        if len(ts) == 0:
            return cached.state
        state = warm_over(forecaster, cached.state, ts, values, series.freq, seasonal)
        cached.state, cached.last_ts = state, int(ts[-1])
        session.flush()
        return state
    if seasonal is not None:
        max_steps = min(max_steps, forecaster.stream_warm_steps)
    ts, values = fetch_readings(session=session, series_id=series.id, limit=max_steps,
                                newest=True)
    initial = forecaster.initial_state(series.name)
    state = warm_over(forecaster, initial, ts, values, series.freq, seasonal)
    if len(ts):
        try:
            with session.begin_nested():
                session.add(SeriesState(series_id=series.id, model_id=model_id, state=state,
                                        last_ts=int(ts[-1])))
        except IntegrityError:
            pass  # another request stored the same state first
    return state


def forget_from(*, session: Session, series_id: int, first_changed_ts: int) -> None:
    """Drop warmed states that covered readings at or after `first_changed_ts`."""
    session.execute(delete(SeriesState).where(SeriesState.series_id == series_id,
                                              SeriesState.last_ts >= first_changed_ts))
    forget_fits_from(session=session, series_id=series_id, first_changed_ts=first_changed_ts)
