"""Seasonal fits of deseasonalised stream models, made once per series, model and day, stored.

Every reading of such a model is read against the MSTL fit made for its day, from the readings
up to three hours before the day (`app/ml/stream_seasonal.py`). The workers make each day's fit
before the day begins
(`app/worker/fits_task.py`) and store it in `seasonal_fits`; every stream of the series, on any
replica, then reads it back with one primary-key lookup, so a stream's own row holds only its RNN
state. A post never fits: when its day's fit is not made yet it reads the newest fit stored,
shifted to the day, and says so (`noting_stale_fits`, `statecast_seasonal_fits_stale`). A warm-up
over history (a new stream, a re-warm, a forecast from history) makes the fits it lacks.
"""

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import stream_rows
from app.db.readings import fetch_readings
from app.db.tables import SeasonalFit, Series
from app.errors import Conflict, field_error
from app.ml.forecaster import Forecaster
from app.ml.seasonal import SeasonalCycles, SeasonalFitter
from app.ml.stream_seasonal import fit_ahead, fit_cutoff_ns
from app.observability.metrics import SEASONAL_FITS_STALE
from app.timegrid import NS_PER_S, on_grid, step_seconds

# Fits older than this before the newest of their series and model are dropped: a stream is
# warmed over two weeks of history (Forecaster.stream_warm_steps), so older fits are read only
# when warming further back, and are then made again.
FIT_RETENTION_S = 28 * 86_400

FitKey = tuple[int, int]  # (series id, boundary in Unix seconds), of one model
_STALE: ContextVar[list[FitKey] | None] = ContextVar("stale_fits", default=None)


@contextmanager
def noting_stale_fits() -> Iterator[list[FitKey]]:
    """The fits read stale (their day's fit not made yet) within the block, for the answer."""
    noted: list[FitKey] = []
    token = _STALE.set(noted)
    try:
        yield noted
    finally:
        _STALE.reset(token)


@dataclass(frozen=True)
class FitRead:
    """The readings a fit read: those stored from `start_s` to `end_s`, inclusive."""

    start_s: int
    end_s: int
    ts: np.ndarray
    values: np.ndarray


def unchanged(session: Session, series_id: int, read: FitRead) -> bool:
    """Whether the readings a fit read are still the stored ones (none replaced or added)."""
    ts, values = fetch_readings(session=session, series_id=series_id, start_s=read.start_s,
                                end_s=read.end_s)
    return np.array_equal(ts, read.ts) and np.array_equal(values, read.values, equal_nan=True)


def make_fit(session: Session, series: Series, fitter: SeasonalFitter, fit_steps: int,
             boundary_s: int) -> tuple[SeasonalCycles, FitRead]:
    """The fit for the day at `boundary_s` from the stored readings, and the readings it read."""
    step_s = step_seconds(series.freq)
    assert step_s is not None, "stream models train on fixed frequencies only"
    config = fitter.config
    cutoff_s = fit_cutoff_ns(boundary_s * NS_PER_S, config.steps_per_day,
                             step_s * NS_PER_S) // NS_PER_S
    start_s, end_s = cutoff_s - fit_steps * step_s, cutoff_s - 1
    ts, values = fetch_readings(session=session, series_id=series.id, start_s=start_s,
                                end_s=end_s)
    _, history = on_grid(ts, values, series.freq)
    return (fit_ahead(fitter, history, boundary_s, cutoff_s, step_s),
            FitRead(start_s=start_s, end_s=end_s, ts=ts, values=values))


def store_fit(session: Session, series_id: int, model_id: int, boundary_s: int,
              fit: SeasonalCycles) -> bool:
    """Store a fit unless one for its day is stored already; True if this one was."""
    try:
        with session.begin_nested():
            session.add(SeasonalFit(series_id=series_id, model_id=model_id,
                                    boundary_ts=boundary_s, cycles=fit,
                                    version=secrets.randbits(62)))
    except IntegrityError:
        return False  # another request or worker stored the same fit first
    # A fit is ~1.5 KB (~7 KB as JSON before): kept forever, a fleet's would grow by 150 MB a day
    # per 100,000 meters.
    session.execute(delete(SeasonalFit).where(
        SeasonalFit.series_id == series_id, SeasonalFit.model_id == model_id,
        SeasonalFit.boundary_ts < boundary_s - FIT_RETENTION_S))
    return True


class StoredSeasonal:
    """The `SeasonalSource` of one series and model, backed by the `seasonal_fits` table."""

    def __init__(self, *, session: Session, series: Series, model_id: int,
                 forecaster: Forecaster, defer_writes: bool = False,
                 cache: "FitCache | None" = None, stale_ok: bool = False) -> None:
        self.session, self.series, self.model_id, self.cache = session, series, model_id, cache
        # A post's source: a missing day's fit is the newest stored one, shifted, never made.
        self.stale_ok = stale_ok
        self.fit_steps = forecaster.features.fit_steps
        self.fitter = forecaster.seasonal_fitter
        self._fits: dict[int, SeasonalCycles] = {}
        # With `defer_writes`, new fits wait in `pending` for `store_pending`: a caller that
        # computes outside any write transaction (a forecast on SQLite) stores them afterwards.
        self.defer_writes = defer_writes
        self.pending: dict[int, SeasonalCycles] = {}

    def cycles(self, boundary_ns: int) -> SeasonalCycles:
        boundary_s = boundary_ns // NS_PER_S
        fit = self._fits.get(boundary_s)
        if fit is None:
            fit = self._fits[boundary_s] = (self._load(boundary_s) or self._stale(boundary_s)
                                            or self._fit(boundary_s))
        return fit

    def _stale(self, boundary_s: int) -> SeasonalCycles | None:
        """The newest stored fit before the day, read as the day's; None if there is none."""
        if not self.stale_ok:
            return None
        step_s = step_seconds(self.series.freq)
        assert step_s is not None, "stream models train on fixed frequencies only"
        key = (self.series.id, boundary_s)
        return stale_fits(self.session.connection(), self.model_id, [key], step_s,
                          self.cache).get(key)

    def _load(self, boundary_s: int) -> SeasonalCycles | None:
        if self.cache is not None:  # a version read, and the fit parsed once per process
            key = (self.series.id, boundary_s)
            return stored_fits(self.session.connection(), self.cache, self.model_id, [key]).get(key)
        row = self.session.get(SeasonalFit, (self.series.id, self.model_id, boundary_s))
        return None if row is None else row.cycles

    def _fit(self, boundary_s: int) -> SeasonalCycles:
        fit, _ = make_fit(self.session, self.series, self.fitter, self.fit_steps, boundary_s)
        if self.defer_writes:
            self.pending[boundary_s] = fit
        else:
            self._store(boundary_s, fit)
        return fit

    def store_pending(self) -> None:
        """Store the fits made since, in the session's (write) transaction."""
        for boundary_s, fit in self.pending.items():
            self._store(boundary_s, fit)
        self.pending.clear()

    def _store(self, boundary_s: int, fit: SeasonalCycles) -> None:
        store_fit(self.session, self.series.id, self.model_id, boundary_s, fit)


# What a cached fit costs beyond its numbers: its key, the fit and its arrays' headers, the
# LRU's link (measured with tracemalloc: docs/benchmarks.md).
FIT_ENTRY_OVERHEAD_BYTES = 550


class FitCache:
    """Decoded seasonal fits kept per process (LRU, bounded by bytes), keyed by model, series,
    day and version.

    Decoding a fit on every post of every stream would cost more than the stream's step. The
    version, read with the post's other rows, tells whether the copy here is still the stored
    one, so no replica ever serves a fit made before a change. The bound is in bytes, not
    fits: a fit's size follows its series' frequency (a quarter-hourly one is twice a
    half-hourly one), and a process's memory is what the bound is for.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._fits: OrderedDict[tuple[int, int, int, int], SeasonalCycles] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._fits)

    def get(self, key: tuple[int, int, int, int]) -> SeasonalCycles | None:
        with self._lock:
            fit = self._fits.get(key)
            if fit is not None:
                self._fits.move_to_end(key)
            return fit

    def put(self, key: tuple[int, int, int, int], fit: SeasonalCycles) -> None:
        with self._lock:
            old = self._fits.pop(key, None)
            if old is not None:
                self.nbytes -= _entry_bytes(old)
            self._fits[key] = fit
            self.nbytes += _entry_bytes(fit)
            while self.nbytes > self.max_bytes and self._fits:
                _, evicted = self._fits.popitem(last=False)
                self.nbytes -= _entry_bytes(evicted)


def _entry_bytes(fit: SeasonalCycles) -> int:
    return fit.nbytes + FIT_ENTRY_OVERHEAD_BYTES


def stored_fits(connection: Connection, cache: FitCache, model_id: int,
                keys: Sequence[FitKey], versions: dict[FitKey, int] | None = None,
                stale_step_s: int | None = None) -> dict[FitKey, SeasonalCycles]:
    """The stored fits among `keys`: versions in one query (unless the caller read them),
    cycles only for those not cached. With `stale_step_s` (a post's read ahead), a key with
    no fit stored gets the newest earlier fit of its series, shifted (`stale_fits`)."""
    if versions is None:
        versions = stream_rows.fit_versions(connection, model_id, keys)
    found: dict[FitKey, SeasonalCycles] = {}
    missing = []
    for key, version in versions.items():
        fit = cache.get((model_id, *key, version))
        if fit is None:
            missing.append(key)
        else:
            found[key] = fit
    for key, (version, cycles) in stream_rows.fit_cycles(connection, model_id, missing).items():
        found[key] = cycles
        cache.put((model_id, *key, version), found[key])
    if stale_step_s is not None:
        found.update(stale_fits(connection, model_id, [k for k in keys if k not in found],
                                stale_step_s, cache))
    return found


def stale_fits(connection: Connection, model_id: int, keys: Sequence[FitKey],
               step_s: int, cache: FitCache | None = None) -> dict[FitKey, SeasonalCycles]:
    """For (series, day) `keys` with no fit stored, each series' newest fit before that day,
    shifted to it, noted as stale.

    With a `cache`, each stand-in is kept as a made fit is, keyed by its day and by the version
    of the fit it was shifted from (bit-inverted, so negative: never a stored fit's version).
    A newer fit stored before the day, or that fit made again, has another version and so is
    read afresh; and once the day's own fit is stored, `stored_fits` finds its version first
    and never asks for a stand-in.
    """
    newest = stream_rows.newest_fits_before(connection, model_id, keys)
    found: dict[FitKey, SeasonalCycles] = {}
    unread: dict[FitKey, int] = {}  # the day -> the boundary of the fit it is shifted from
    for key, (fit_boundary_s, version) in newest.items():
        fit = None if cache is None else cache.get((model_id, *key, ~version))
        if fit is None:
            unread[key] = fit_boundary_s
        else:
            found[key] = fit
    if unread:
        read = stream_rows.fit_cycles(connection, model_id,
                                      sorted({(key[0], b) for key, b in unread.items()}))
        for key, fit_boundary_s in unread.items():
            if (key[0], fit_boundary_s) not in read:
                continue  # dropped since the read above (PostgreSQL): no stand-in
            version, cycles = read[(key[0], fit_boundary_s)]
            found[key] = cycles.shifted((key[1] - fit_boundary_s) // step_s)
            if cache is not None:
                cache.put((model_id, *key, ~version), found[key])
    _note_stale(list(found))
    return found


def _note_stale(keys: list[FitKey]) -> None:
    if not keys:
        return
    SEASONAL_FITS_STALE.inc(len(keys))
    noted = _STALE.get()
    if noted is not None:
        noted.extend(keys)


class PreloadedSeasonal:
    """A stream's fits read ahead in bulk, falling back to making (and storing) a missing one."""

    def __init__(self, fits: dict[FitKey, SeasonalCycles], series_id: int,
                 make: Callable[[], "StoredSeasonal"]) -> None:
        self.fits, self.series_id, self.make = fits, series_id, make
        self.fallback: StoredSeasonal | None = None

    def cycles(self, boundary_ns: int) -> SeasonalCycles:
        fit = self.fits.get((self.series_id, boundary_ns // NS_PER_S))
        if fit is not None:
            return fit
        if self.fallback is None:
            self.fallback = self.make()
        return self.fallback.cycles(boundary_ns)


def seasonal_source(*, session: Session, series: Series, model_id: int,
                    forecaster: Forecaster, defer_writes: bool = False,
                    cache: "FitCache | None" = None,
                    stale_ok: bool = False) -> StoredSeasonal | None:
    """The fits a model's stream steps read, or None for models that read none."""
    refuse_profile(forecaster, model_id)
    if not forecaster.needs_seasonal:
        return None
    return StoredSeasonal(session=session, series=series, model_id=model_id,
                          forecaster=forecaster, defer_writes=defer_writes, cache=cache,
                          stale_ok=stale_ok)


def stored_source(session: Session, forecaster: Forecaster, model_id: int, series_id: int,
                  cache: "FitCache | None" = None) -> StoredSeasonal:
    """Where a fit missing from a post's read ahead (`stored_fits`) comes from: the newest fit
    stored, read stale (made, only if the series has none at all)."""
    refuse_profile(forecaster, model_id)
    series = session.get(Series, series_id)
    assert series is not None
    return StoredSeasonal(session=session, series=series, model_id=model_id,
                          forecaster=forecaster, cache=cache, stale_ok=True)


def refuse_profile(forecaster: Forecaster, model_id: int) -> None:
    """Conflict for a model trained with a calendar or covariates on a path that reads stored
    fits: such a model reads a profile over its covariates (`app.streams.sources`) instead."""
    if forecaster.uses_profile:
        raise Conflict(
            f"Model {model_id} was trained with a calendar or covariates, which this request "
            "cannot feed it: forecast with /v1/series/{id}/forecast or a stream, or pin a model "
            "trained without them", errors=[field_error("model_id", model_id,
                                                        "reads a calendar or covariates")])


def forget_fits_from(*, session: Session, series_id: int, first_changed_ts: int) -> None:
    """Drop fits that read a reading at or after `first_changed_ts`."""
    session.execute(delete(SeasonalFit).where(SeasonalFit.series_id == series_id,
                                              SeasonalFit.boundary_ts > first_changed_ts))
