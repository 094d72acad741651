"""Readings for many streams in one transaction: each stream applied whole, or refused alone.

Every post, of one reading or of fifty thousand over as many meters, comes through here:
1. lock every named stream at once (in id order, so concurrent posts cannot deadlock);
2. the common case, one reading right after a stream's last, takes the fast path: streams
   of one model advance together in one network pass, their readings go in with one insert and
   their rows are written with one update, all in plain SQL (`app.db.stream_rows`); a profile
   model's streams read their covariates stored around the reading first (one read per series
   and time; `app.covariate_inputs.stepping_profile`), and a series that no longer links one
   has its streams refused before anything is stored;
3. anything else (several readings, gaps, re-sent readings, a changed default model, a window
   model) goes through `service.apply_readings`, a stream at a time, each in a savepoint.
A stream refused (unknown, conflicting, invalid) changes nothing and does not stop the others.
"""

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.config import Settings
from app.covariate_inputs import stepping_profile
from app.db import stream_rows
from app.db.engine import lock_for_write
from app.db.reading_counts import count_inserted
from app.db.stream_rows import StreamRow, StreamUpdate
from app.db.tables import Stream
from app.errors import Conflict, NotFound, ServiceError, field_error
from app.ingest import MAX_REPORTED_ROWS, ReadingsBatch, checked_batch
from app.ml.forecaster import Forecaster
from app.ml.profile import ProfileSource
from app.ml.stream_seasonal import SeasonalSource
from app.ml.stream_state import State, StreamState
from app.streams import judging, service
from app.streams.model_cache import ForecasterCache
from app.streams.seasonal_fits import FitCache, PreloadedSeasonal, stored_fits, stored_source
from app.timegrid import NS_PER_S, step_seconds, to_iso


@dataclass
class StreamReadings:
    """One stream's readings as sent: where each sat in the request names it in errors."""

    name: str
    ts_ns: np.ndarray
    values: np.ndarray
    positions: np.ndarray  # each reading's index in the request's `readings`


@dataclass
class Outcome:
    """What became of one stream: applied (with its new row), or refused with the reason."""

    name: str
    done: service.Applied = field(default_factory=service.Applied)
    error: ServiceError | None = None
    last_ts: int | None = None
    readings_applied: int = 0
    next_forecast: dict[str, Any] | None = None
    state: State | None = None
    accuracy: dict[str, Any] | None = None
    model_id: int | None = None
    series_id: int | None = None
    forecaster: Forecaster | None = None


@dataclass
class _Step:
    """A stream on the fast path: one present reading, right after its last one."""

    row: StreamRow
    state: StreamState
    ts_s: int
    value: float
    step_s: int


# Streams in one post from which the cyclic garbage collector waits until the post is done:
# a fleet's post allocates a few dicts per stream, none of them cyclic, and the collections
# they set off cost a third of its time.
GC_PAUSE_MIN_STREAMS = 256
_gc_pauses = 0
_gc_lock = threading.Lock()


@contextmanager
def _gc_paused(streams: int) -> Iterator[None]:
    global _gc_pauses
    if streams < GC_PAUSE_MIN_STREAMS:
        yield
        return
    with _gc_lock:
        _gc_pauses += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0:
                gc.enable()


def post_readings(*, session: Session, forecasters: ForecasterCache, fits: FitCache,
                  settings: Settings, tenant_id: int, sent: Sequence[StreamReadings],
                  rewarm: bool = False) -> list[Outcome]:
    """Apply each stream's readings, or refuse them; one outcome per stream, in `sent` order.

    The caller commits. A database failure raises and the caller's rollback undoes everything.
    """
    with _gc_paused(len(sent)):
        return _post_readings(session=session, forecasters=forecasters, fits=fits,
                              settings=settings, tenant_id=tenant_id, sent=sent, rewarm=rewarm)


def _post_readings(*, session: Session, forecasters: ForecasterCache, fits: FitCache,
                   settings: Settings, tenant_id: int, sent: Sequence[StreamReadings],
                   rewarm: bool) -> list[Outcome]:
    lock_for_write(session)
    connection = session.connection()
    rows = {row.name: row for row in stream_rows.lock_streams(
        connection, tenant_id, [s.name for s in sent])}
    outcomes: dict[str, Outcome] = {}
    fast: dict[int, list[_Step]] = {}
    slow: list[tuple[StreamRow, ReadingsBatch]] = []
    for readings in sent:
        row = rows.get(readings.name)
        try:
            if row is None:
                raise NotFound(f"No stream with id {readings.name!r}")
            batch = _checked_one(readings, row.freq) or _checked(readings, row.freq)
            step = _fast_step(row, batch, forecasters)
        except ServiceError as exc:
            outcomes[readings.name] = Outcome(name=readings.name, error=exc)
            continue
        if step is None:
            slow.append((row, batch))
        else:
            fast.setdefault(step.row.model_id or 0, []).append(step)
    for model_id, steps in fast.items():
        forecaster = forecasters.get(model_id, steps[0].row.current_ready_at)
        for outcome in _step_many(session, connection, forecaster, model_id, steps, fits):
            outcomes[outcome.name] = outcome
    for row, batch in slow:
        outcomes[row.name] = _apply_one(session, forecasters, settings, row, batch, rewarm)
    return [outcomes[s.name] for s in sent]


def _checked(readings: StreamReadings, freq: str) -> ReadingsBatch:
    """The readings on the series' grid, none twice, sorted (as a one-stream post checks them)."""
    def report(mask: np.ndarray, message: str) -> list[dict[str, object]]:
        return [field_error(f"readings[{readings.positions[i]}].ts",
                            to_iso(int(readings.ts_ns[i] // NS_PER_S)), message)
                for i in np.flatnonzero(mask)[:MAX_REPORTED_ROWS].tolist()]

    return checked_batch(readings.ts_ns, readings.values, freq, report)


def _checked_one(readings: StreamReadings, freq: str) -> ReadingsBatch | None:
    """A lone reading on a fixed step's grid, checked with integer arithmetic (most posts);
    None for anything else, which `_checked` checks and explains."""
    step_s = step_seconds(freq)
    ts_ns = readings.ts_ns.tolist()
    if step_s is None or len(ts_ns) != 1 or ts_ns[0] % NS_PER_S or ts_ns[0] // NS_PER_S % step_s:
        return None
    return ReadingsBatch(ts_s=readings.ts_ns // NS_PER_S, values=readings.values)


def _fast_step(row: StreamRow, batch: ReadingsBatch, forecasters: ForecasterCache) -> _Step | None:
    """The stream's step if it can take the fast path, else None."""
    step_s = step_seconds(row.freq)
    state = row.state
    if (len(batch.ts_s) != 1 or row.last_ts is None or step_s is None
            or row.current_model_id is None or row.current_model_id != row.model_id
            or not isinstance(state, StreamState) or np.isnan(batch.values[0])
            or int(batch.ts_s[0]) != row.last_ts + step_s):
        return None
    forecaster = forecasters.get(row.current_model_id, row.current_ready_at)
    # A network that reads covariates steps through the general service, which reads them.
    if (not forecaster.is_stream or forecaster.reads_covariates_in_network
            or not _fits_network(state, forecaster)):
        return None
    return _Step(row=row, state=state, ts_s=int(batch.ts_s[0]), value=float(batch.values[0]), step_s=step_s)


def _fits_network(state: StreamState, forecaster: Forecaster) -> bool:
    """Whether the state's arrays have the network's layout and its series a scale: anything
    else goes the general way, which refuses it with the reason instead of failing the post."""
    units = forecaster.network.state_units
    return (state.series in forecaster.scales and len(state.network) == len(units)
            and all(layer.shape == (1, width) for layer, width in zip(state.network, units, strict=True)))


def _step_many(session: Session, connection: Connection, forecaster: Forecaster, model_id: int,
               steps: list[_Step], fits: FitCache) -> list[Outcome]:
    """Advance the streams of one model by their one reading each, all at once."""
    series_ids = np.array([s.row.series_id for s in steps], dtype=np.int64)
    ts = np.array([s.ts_s for s in steps], dtype=np.int64)
    values = np.array([s.value for s in steps])
    step_s = np.array([s.step_s for s in steps], dtype=np.int64)
    # One read: any reading already stored at each timestamp (by another stream of the series,
    # or an upload), the readings the baselines forecast each one with, and the fits' versions.
    lags = judging.baseline_lags_s(forecaster, step_s)
    looked_up = [ts, *(ts - lag for lag in lags.values())]
    fit_keys = _fit_keys(forecaster, steps)
    stored, versions = stream_rows.stored_values_and_fit_versions(
        connection, np.tile(series_ids, len(looked_up)), np.concatenate(looked_up), model_id,
        fit_keys)
    refused: list[Outcome] = []
    keep, fresh = [], []
    # Two streams of one series may carry the same reading: the first stores it, and the
    # second must agree with it as with a stored one.
    carried: dict[tuple[int, int], float] = {}
    for i, s in enumerate(steps):
        key = (s.row.series_id, s.ts_s)
        before = stored.get(key, carried.get(key))
        if before is not None and before != s.value:
            refused.append(Outcome(name=s.row.name, error=_stored_differs(s, before)))
            continue
        keep.append(i)
        fresh.append(before is None)
        carried[key] = s.value
    steps = [steps[i] for i in keep]
    profiles = _profiles(session, forecaster, model_id, steps) if forecaster.uses_profile else {}
    readable = {key: p for key, p in profiles.items() if isinstance(p, ProfileSource)}
    unread = {key: p for key, p in profiles.items() if isinstance(p, ServiceError)}
    if unread:  # a covariate the model reads is no longer linked: those streams are refused
        refused += [Outcome(name=steps[i].row.name, error=unread[_profile_key(steps[i])])
                    for i in range(len(steps)) if _profile_key(steps[i]) in unread]
        keep = [keep[i] for i in range(len(steps)) if _profile_key(steps[i]) not in unread]
        fresh = [f for i, f in enumerate(fresh) if _profile_key(steps[i]) not in unread]
        steps = [s for s in steps if _profile_key(s) not in unread]
    if not steps:
        return refused
    series_ids, ts, values, step_s = series_ids[keep], ts[keep], values[keep], step_s[keep]
    # Stored first: the fit of the next step's day, made below when it is missing, reads them.
    new = np.array(fresh, dtype=bool)
    inserted = stream_rows.insert_new_readings(connection, series_ids[new], ts[new], values[new])
    count_inserted(session, len(inserted))  # charged to the tenant's readings quota
    raced = [i for i in np.flatnonzero(new).tolist()
             if (steps[i].row.series_id, steps[i].ts_s) not in inserted]
    if raced:  # stored by another writer since the read above: the same value is no conflict
        again = stream_rows.stored_values(connection, series_ids[raced], ts[raced])
        lost = set()
        for i in raced:
            before = again.get((steps[i].row.series_id, steps[i].ts_s), np.nan)
            if before != values[i]:
                lost.add(i)
                refused.append(Outcome(name=steps[i].row.name,
                                       error=_stored_differs(steps[i], before)))
        keep = [i for i in range(len(steps)) if i not in lost]
        steps, ts, values, step_s = [steps[i] for i in keep], ts[keep], values[keep], step_s[keep]
        series_ids = series_ids[keep]
        if not steps:
            return refused
    sources: list[SeasonalSource | None] = [readable[_profile_key(s)] for s in steps] \
        if forecaster.uses_profile else \
        _sources(session, connection, forecaster, model_id, steps, fits, fit_keys, versions)
    states, means = forecaster.step_streams([s.state for s in steps], values,
                                            ts * NS_PER_S, sources)
    ones = np.ones(len(steps), dtype=np.int64)
    sids = series_ids.tolist()
    sums, points = judging.judged(forecaster, judging.Stepped(
        series=[state.series for state in states], accuracies=[s.row.accuracy for s in steps],
        stored_next=[s.row.next_forecast for s in steps], grid_counts=ones, grid_ts=ts,
        means=means, sent_at=np.arange(len(steps)), sent_counts=ones, values=values,
        baselines=judging.baseline_forecasts(ts, judging.baseline_lags_s(forecaster, step_s),
                                             lambda at: np.array([stored.get(key, np.nan) for key in
                                                                  zip(sids, at.tolist(), strict=True)])),
        next_ts=ts + step_s))
    outcomes = [Outcome(
        name=s.row.name, done=service.Applied(applied=[to_iso(s.ts_s)]), last_ts=s.ts_s,
        readings_applied=s.row.readings_applied + 1, next_forecast=points[i], state=states[i],
        accuracy=sums[i], model_id=s.row.model_id, series_id=s.row.series_id,
        forecaster=forecaster) for i, s in enumerate(steps)]
    stream_rows.save_streams(connection, [StreamUpdate(
        id=s.row.id, model_id=model_id, state=o.state, last_ts=o.last_ts,
        readings_applied=o.readings_applied, next_forecast=o.next_forecast,
        accuracy=o.accuracy) for s, o in zip(steps, outcomes, strict=True)])
    return refused + outcomes


def _stored_differs(step: _Step, before: float) -> Conflict:
    return Conflict("1 reading(s) already stored with another value; post it to the series "
                    "with on_conflict=replace to overwrite it",
                    errors=[field_error("value", step.value, f"stored value is {before}",
                                        ts=to_iso(step.ts_s))])


def _fit_keys(forecaster: Forecaster, steps: list[_Step]) -> list[tuple[int, int]]:
    """The (series, boundary) of the fits the steps read: their own day's and the next step's."""
    if not forecaster.needs_seasonal or forecaster.uses_profile:
        return []
    ns = np.array([s.ts_s for s in steps], dtype=np.int64) * NS_PER_S
    series_ids = [s.row.series_id for s in steps]
    keys: set[tuple[int, int]] = set()
    for bounds in forecaster.step_fit_boundaries(ns):
        keys.update(zip(series_ids, (bounds // NS_PER_S).tolist(), strict=True))
    return list(keys)


def _sources(session: Session, connection: Connection, forecaster: Forecaster, model_id: int,
             steps: list[_Step], fits: FitCache, keys: list[tuple[int, int]],
             versions: dict[tuple[int, int], int]) -> list[SeasonalSource | None]:
    """Each stream's seasonal fits (made and stored, once a day, where missing)."""
    if not forecaster.needs_seasonal:
        return [None] * len(steps)
    found = stored_fits(connection, fits, model_id, keys, versions,
                        stale_step_s=forecaster.step_size.value // NS_PER_S)
    by_series: dict[int, PreloadedSeasonal] = {}
    for series_id in {s.row.series_id for s in steps}:
        by_series[series_id] = PreloadedSeasonal(found, series_id, partial(
            stored_source, session, forecaster, model_id, series_id))
    return [by_series[s.row.series_id] for s in steps]


def _profile_key(step: _Step) -> tuple[int, int]:
    return step.row.series_id, step.ts_s


def _profiles(session: Session, forecaster: Forecaster, model_id: int,
              steps: list[_Step]) -> dict[tuple[int, int], ProfileSource | ServiceError]:
    """A profile model's profile around each (series, reading time) of the steps, from the
    series' stored covariates (one read per covariate and key), or why it cannot be read.
    The series' name, frequency and calendar come with the streams' locked rows."""
    rows = {s.row.series_id: s.row for s in steps}
    found: dict[tuple[int, int], ProfileSource | ServiceError] = {}
    for series_id, ts_s in {_profile_key(s) for s in steps}:
        try:
            found[series_id, ts_s] = stepping_profile(
                session=session, series=rows[series_id].series, forecaster=forecaster,
                model_id=model_id, first_s=ts_s, last_s=ts_s)
        except ServiceError as exc:
            found[series_id, ts_s] = exc
    return found


def _apply_one(session: Session, forecasters: ForecasterCache, settings: Settings, row: StreamRow,
               batch: ReadingsBatch, rewarm: bool) -> Outcome:
    """A stream off the fast path, through the general service, undone alone if refused."""
    try:
        with session.begin_nested():
            stream = session.get(Stream, row.id)
            assert stream is not None
            done, forecaster = service.apply_readings(
                session=session, cache=forecasters, settings=settings, stream=stream,
                batch=batch, rewarm=rewarm)
    except ServiceError as exc:
        return Outcome(name=row.name, error=exc)
    return Outcome(name=row.name, done=done, last_ts=stream.last_ts,
                   readings_applied=stream.readings_applied, next_forecast=stream.next_forecast,
                   state=stream.state, model_id=stream.model_id, series_id=stream.series_id,
                   forecaster=forecaster)
