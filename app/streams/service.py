"""Streams: per-client live state, advanced one reading at a time, stored in the database.

A post stores its readings in the series and advances the stream's state in one transaction,
under a lock on the stream (a row lock on PostgreSQL, the write lock on SQLite), so concurrent
posts to one stream serialise and a retried reading is acknowledged, never applied twice.
"""

import secrets
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import forecast_models as models_db
from app.db import stream_rows
from app.db.forecast_models import ModelRef
from app.db.readings import fetch_readings, store_readings
from app.db.stream_rows import ForecastRow
from app.db.tables import ForecastModel, ModelStatus, Series, Stream, utcnow
from app.errors import Conflict, Invalid, NotFound, field_error
from app.ingest import ReadingsBatch
from app.ml.features import CovariateTrack
from app.ml.forecaster import Forecast, Forecaster
from app.ml.stream_seasonal import SeasonalSource
from app.ml.stream_state import State
from app.streams import judging
from app.streams.history import history_state
from app.streams.model_cache import ForecasterCache
from app.streams.seasonal_fits import FitCache, PreloadedSeasonal, stored_fits, stored_source
from app.streams.sources import (
    forecast_covariates,
    profile_forecast_source,
    stepping_covariates,
    stepping_source,
)
from app.timegrid import NS_PER_S, following, iso_many, on_grid, step_seconds, to_index, to_iso


@dataclass
class Applied:
    """What a post did: readings applied, acknowledged again, filled, and any re-warm."""

    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    rewarmed: str | None = None


def get_stream(*, session: Session, tenant_id: int, name: str, for_update: bool = False) -> Stream:
    """The tenant's stream, or NotFound; its series comes along into the session (one query)."""
    query = (select(Stream, Series).join(Series, Series.id == Stream.series_id)
             .where(Stream.tenant_id == tenant_id, Stream.name == name))
    if for_update:
        query = query.with_for_update(of=Stream)
    row = session.execute(query).first()
    if row is None:
        raise NotFound(f"No stream with id {name!r}")
    stream: Stream = row[0]
    return stream


def model_for(*, session: Session, stream: Stream) -> tuple[ModelRef, str | None]:
    """The model the stream should use now, and why it differs from the one it used, if it does."""
    if stream.pinned:
        model = models_db.model_ref(session=session, model_id=stream.model_id) \
            if stream.model_id else None
        if model is None:
            raise Conflict("The model this stream was pinned to was deleted; re-create the "
                           "stream or re-pin it with POST /v1/streams/{id}/reset?model_id=...")
        return model, None
    model = models_db.default_model_ref(session=session, series_id=stream.series_id)
    if model is None:
        raise models_db.no_ready_model(session=session, series_id=stream.series_id)
    if stream.model_id is not None and model.id != stream.model_id:
        return model, f"the series' default model changed from {stream.model_id} to {model.id}"
    return model, None


def create_stream(*, session: Session, cache: ForecasterCache, settings: Settings,
                  tenant_id: int, series: Series, model: ForecastModel | None,
                  name: str | None) -> Stream:
    pinned = model is not None
    if model is None:
        model = models_db.default_model(session=session, series_id=series.id)
        if model is None:
            raise models_db.no_ready_model(session=session, series_id=series.id)
    else:
        _check_pinnable(session=session, model=model, series=series)
    stream = Stream(tenant_id=tenant_id, name=name or f"st_{secrets.token_hex(8)}",
                    series_id=series.id, model_id=model.id, pinned=pinned, readings_applied=0)
    _warm(session=session, cache=cache, settings=settings, stream=stream, model=model,
          series=series)
    try:
        with session.begin_nested():
            session.add(stream)
    except IntegrityError:
        raise Conflict(f"A stream with id {name!r} already exists",
                       errors=[field_error("stream_id", name, "already taken")]) from None
    return stream


def _check_pinnable(*, session: Session, model: ForecastModel, series: Series) -> None:
    """A stream may be pinned to a ready model trained on its series, and to no other."""
    if model.status != ModelStatus.READY or series.id not in models_db.series_ids(
            session=session, model_id=model.id):
        raise Invalid(f"Model {model.id} is not a ready model of series {series.id}",
                      errors=[field_error("model_id", model.id, "not ready, or not trained "
                                                                  "on this series")])


def check_streamable(forecaster: Forecaster, model_id: int) -> None:
    """Conflict for a window model whose network reads covariates (`covariate_inputs`):
    streams feed a stream model's covariate inputs, not yet a window model's (series forecasts
    do)."""
    if forecaster.reads_covariates_in_network and not forecaster.is_stream:
        raise Conflict(
            f"Model {model_id} is a window model that reads covariates in its network "
            "(`covariate_inputs`), which streams do not feed yet: pin the stream to a stream "
            "model (`stateful: true`) or one trained with `covariate_inputs: \"profile\"`, or "
            "forecast the series (GET /v1/series/{id}/forecast)",
            errors=[field_error("model_id", model_id, "a window model that reads covariates "
                                "in its network")])


def _warm(*, session: Session, cache: ForecasterCache, settings: Settings, stream: Stream,
          model: ForecastModel | ModelRef, series: Series) -> None:
    """(Re)start the stream from the model run over the series' stored history."""
    forecaster = cache.get(model.id, model.ready_at)
    check_streamable(forecaster, model.id)
    state, seasonal, track = history_state(session=session, forecaster=forecaster,
                                           model_id=model.id, series=series,
                                           max_steps=settings.stream_warm_steps)
    stream.model_id = model.id
    stream.state = state
    stream.last_ts = _state_ts(state)
    stream.next_forecast = _next(forecaster, state, seasonal, track)
    stream.accuracy = None
    stream.updated_at = utcnow()


def apply_readings(*, session: Session, cache: ForecasterCache, settings: Settings,
                   stream: Stream, batch: ReadingsBatch, rewarm: bool = False
                   ) -> tuple[Applied, Forecaster]:
    """Store the readings in the series and advance the stream over them, in order.

    The caller holds the stream's lock and commits. Returns what was done and the forecaster
    of the model the stream now uses.
    """
    series = session.get(Series, stream.series_id)
    assert series is not None
    model, switched = model_for(session=session, stream=stream)
    result = Applied()
    last = stream.last_ts
    ts, values = batch.ts_s, batch.values
    if last is not None:
        old = ts <= last
        if old.any():
            _check_resent(session=session, stream=stream, ts=ts[old], values=values[old])
            result.duplicates = iso_many(ts[old])
            ts, values = ts[~old], values[~old]
    forecaster = cache.get(model.id, model.ready_at)
    check_streamable(forecaster, model.id)
    if len(ts) == 0:  # all re-sent: the state, and the model it belongs to, stay as they are
        return result, _current(session=session, cache=cache, stream=stream, fallback=forecaster)
    gaps = _gaps(last, ts, series.freq)
    # One read serves both the duplicate check of the insert and the baselines' readings.
    lags = judging.baseline_lags_s(forecaster, step_seconds(series.freq))
    nearby = fetch_readings(session=session, series_id=series.id,
                            start_s=int(ts[0]) - int(max(lags.values(), default=0)),
                            end_s=int(ts[-1]))
    store_readings(session=session, series_id=series.id,
                   batch=ReadingsBatch(ts_s=ts, values=values), stored=nearby)
    too_long = np.flatnonzero(gaps > settings.stream_max_gap)
    if switched or (too_long.size and rewarm):
        result.rewarmed = switched or "asked to re-warm over a gap"
        _warm(session=session, cache=cache, settings=settings, stream=stream, model=model,
              series=series)
        result.applied = iso_many(ts)
        stream.readings_applied += len(ts)
        return result, forecaster
    if too_long.size:
        i = int(too_long[0])
        after = to_iso(int(ts[i - 1]) if i else (last or 0))
        raise Invalid(
            f"The reading at {to_iso(int(ts[i]))} comes {int(gaps[i])} steps after the one at "
            f"{after}; at most {settings.stream_max_gap} missing steps are filled. "
            "Send rewarm=true to restart the stream from the stored history.",
            errors=[field_error(f"readings[{i}].ts", to_iso(int(ts[i])), "gap too long")])
    previous = [last, *ts[:-1].tolist()]
    for prev, gap in zip(previous, gaps.tolist(), strict=True):
        if gap > 0 and prev is not None:
            result.filled += iso_many(following(prev, series.freq, gap))
    state = stream.state or forecaster.initial(series.name)
    grid, full = on_grid(ts, values, series.freq)
    seasonal = stepping_source(session=session, series=series, forecaster=forecaster,
                               model_id=model.id, first_s=int(grid[0]) if last is None else last,
                               last_s=int(grid[-1]), stale_ok=True)  # a post never fits
    # Each reading is stepped with the covariates' stored values at its time (masked where none).
    track = stepping_covariates(session=session, series=series, forecaster=forecaster,
                                model_id=model.id, first_s=int(grid[0]) if last is None else last,
                                last_s=int(grid[-1]))
    try:
        state, means = forecaster.advance(full, to_index(grid), state, seasonal=seasonal,
                                          network_covariates=track)
    except ValueError as exc:
        raise Conflict(f"The model cannot follow these readings: {exc}") from None
    known = partial(_stored_at, np.concatenate([nearby[0], ts]), np.concatenate([nearby[1], values]))
    sums, (forecast,) = judging.judged(forecaster, judging.Stepped(
        series=[series.name], accuracies=[stream.accuracy], stored_next=[stream.next_forecast],
        grid_counts=np.array([len(grid)]), grid_ts=grid, means=means,
        sent_at=np.searchsorted(grid, ts), sent_counts=np.array([len(ts)]), values=values,
        baselines=judging.baseline_forecasts(ts, lags, known),
        next_ts=following(int(grid[-1]), series.freq, 1)))
    stream.state, stream.accuracy, stream.next_forecast = state, sums[0], forecast
    stream.last_ts = int(ts[-1])
    stream.readings_applied += len(ts)
    stream.updated_at = utcnow()
    result.applied = iso_many(ts)
    return result, forecaster


def _current(*, session: Session, cache: ForecasterCache, stream: Stream,
             fallback: Forecaster) -> Forecaster:
    """The forecaster of the model the stream's state belongs to."""
    if stream.model_id is None:
        return fallback
    ref = models_db.model_ref(session=session, model_id=stream.model_id)
    return fallback if ref is None else cache.get(ref.id, ref.ready_at)


def _gaps(last: int | None, ts: np.ndarray, freq: str) -> np.ndarray:
    """Missing grid steps before each reading (since the stream's last one, then each other)."""
    step_s = step_seconds(freq)
    if step_s is None or len(ts) == 0:
        return np.zeros(len(ts), dtype=np.int64)
    previous = np.concatenate([[ts[0] - step_s if last is None else last], ts[:-1]])
    gaps: np.ndarray = (ts - previous) // step_s - 1
    return gaps


def _check_resent(*, session: Session, stream: Stream, ts: np.ndarray, values: np.ndarray) -> None:
    """Readings at or before the stream's last: acknowledged if stored with the same value."""
    stored_ts, stored = fetch_readings(session=session, series_id=stream.series_id,
                                       start_s=int(ts[0]), end_s=int(ts[-1]))
    lookup = dict(zip(stored_ts.tolist(), stored.tolist(), strict=True))
    for t, value in zip(ts.tolist(), values.tolist(), strict=True):
        previous = lookup.get(t)
        same = previous is not None and (previous == value or (np.isnan(previous)
                                                               and np.isnan(value)))
        if not same:
            raise Conflict(
                f"The reading at {to_iso(t)} is not after the stream's last reading at "
                f"{to_iso(stream.last_ts or 0)}" + ("" if previous is None else
                                                    f" and differs from the stored {previous}"),
                errors=[field_error("ts", to_iso(t), "not after the stream's last reading")],
                last_ts=to_iso(stream.last_ts or 0))


def _stored_at(known_ts: np.ndarray, known: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The known reading at each of the times `at` (NaN where none is known)."""
    found = np.full(len(at), np.nan)
    if len(known_ts) == 0:
        return found
    order = np.argsort(known_ts, kind="stable")
    known_ts, known = known_ts[order], known[order]
    position = np.searchsorted(known_ts, at)
    hit = position < len(known_ts)
    hit[hit] = known_ts[position[hit]] == at[hit]
    found[hit] = known[position[hit]]
    return found


def _state_ts(state: State) -> int | None:
    return None if state.last_ns is None else state.last_ns // NS_PER_S


def _next(forecaster: Forecaster, state: State, seasonal: SeasonalSource | None,
          track: CovariateTrack | None = None) -> dict[str, Any] | None:
    """The one-step forecast and intervals from `state`, or None before it can forecast."""
    try:
        forecast = forecaster.forecast_from_state(state, 1, seasonal=seasonal,
                                                  network_covariates=track)
    except ValueError:
        return None
    return judging.points(forecast)[0]


def forecast_stream(*, session: Session, cache: ForecasterCache, fits: FitCache, tenant_id: int,
                    name: str, horizon: int, levels: tuple[int, ...]) -> tuple[ForecastRow, Forecast]:
    """The tenant's stream `name` and its forecast from its state, on its own model.

    A forecast is read-only and requested often: one statement reads the stream with its model,
    one the version of the seasonal fit it reads (parsed once per process); the ORM is left for
    the errors and for a fit not made yet.
    """
    connection = session.connection()
    row = stream_rows.read_for_forecast(connection, tenant_id, name)
    if row is None:
        raise NotFound(f"No stream with id {name!r}")
    if row.ready_model_id is None:
        stream = get_stream(session=session, tenant_id=tenant_id, name=name)
        model_for(session=session, stream=stream)  # says why: pinned model gone, none ready
        raise Conflict("The stream's model is gone; reset the stream to pick the current one")
    forecaster = cache.get(row.ready_model_id, row.ready_at)
    check_streamable(forecaster, row.ready_model_id)
    if row.state is None:
        raise Conflict("The stream has no state yet")
    track = None
    if forecaster.reads_covariates_in_network:
        series = session.get(Series, row.series_id)
        assert series is not None
        track = forecast_covariates(session=session, series=series, forecaster=forecaster,
                                    model_id=row.ready_model_id, state=row.state, horizon=horizon)
    return row, run_forecast(forecaster, row.state, horizon, levels, _forecast_source(
        session=session, connection=connection, forecaster=forecaster, fits=fits,
        model_id=row.ready_model_id, series_id=row.series_id, state=row.state, horizon=horizon),
        track)


def _forecast_source(*, session: Session, connection: Connection, forecaster: Forecaster,
                     fits: FitCache, model_id: int, series_id: int, state: State,
                     horizon: int) -> SeasonalSource | None:
    """The fit a forecast from `state` reads, read ahead; made (and stored) if missing. A
    profile model reads its profile over the stored covariates instead."""
    if forecaster.uses_profile:
        series = session.get(Series, series_id)
        assert series is not None
        return profile_forecast_source(session=session, series=series, forecaster=forecaster,
                                       model_id=model_id, state=state, horizon=horizon)
    boundary_ns = forecaster.forecast_boundary_ns(state)
    if boundary_ns is None:
        return None
    keys = [(series_id, boundary_ns // NS_PER_S)]
    return PreloadedSeasonal(stored_fits(
        connection, fits, model_id, keys, stale_step_s=forecaster.step_size.value // NS_PER_S),
        series_id, partial(stored_source, session, forecaster, model_id, series_id, fits))


def run_forecast(forecaster: Forecaster, state: State, horizon: int,
                 levels: tuple[int, ...], seasonal: SeasonalSource | None = None,
                 network_covariates: CovariateTrack | None = None) -> Forecast:
    """Roll out from `state`, turning the forecaster's complaints into client errors."""
    unknown = [level for level in levels if level not in forecaster.quantiles]
    if unknown:
        raise Invalid(f"Intervals are calibrated for levels {sorted(forecaster.quantiles)}",
                      errors=[field_error("level", unknown, "not a calibrated level")])
    try:
        return forecaster.forecast_from_state(state, horizon, levels, seasonal=seasonal,
                                              network_covariates=network_covariates)
    except ValueError as exc:
        raise Conflict(f"Cannot forecast yet: {exc}") from None


def mase_scale(forecaster: Forecaster, series: Series) -> float | None:
    scales = forecaster.meta.get("mase_scales") or {}
    value = scales.get(series.name)
    return float(value) if value else None


def reset_stream(*, session: Session, cache: ForecasterCache, settings: Settings,
                 stream: Stream, series: Series, model: ForecastModel | None) -> None:
    """Re-warm from history; with `model`, pin it (it must be a ready model of the series)."""
    if model is not None:
        _check_pinnable(session=session, model=model, series=series)
        stream.pinned, stream.model_id = True, model.id
    chosen, _ = model_for(session=session, stream=stream)
    _warm(session=session, cache=cache, settings=settings, stream=stream, model=chosen,
          series=series)
