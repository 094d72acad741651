"""Seasonal fits of deseasonalised stream models, made once per series, model and day, stored.

Every reading of such a model is read against the MSTL fit on the readings before its day
(`app/ml/stream_seasonal.py`). The first request that needs a day's fit makes it from the stored
readings and stores it in `seasonal_fits`; every stream of the series, on any replica, then
reads it back with one primary-key lookup, so a stream's own row holds only its RNN state.
"""

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import stream_rows
from app.db.readings import fetch_readings
from app.db.tables import SeasonalFit, Series
from app.errors import Conflict, field_error
from app.ml.forecaster import Forecaster
from app.ml.seasonal import SeasonalCycles
from app.timegrid import NS_PER_S, on_grid, step_seconds

# Fits older than this before the newest of their series and model are dropped: a stream is
# warmed over two weeks of history (Forecaster.stream_warm_steps), so older fits are read only
# when warming further back, and are then made again.
FIT_RETENTION_S = 28 * 86_400


class StoredSeasonal:
    """The `SeasonalSource` of one series and model, backed by the `seasonal_fits` table."""

    def __init__(self, *, session: Session, series: Series, model_id: int,
                 forecaster: Forecaster, defer_writes: bool = False,
                 cache: "FitCache | None" = None) -> None:
        self.session, self.series, self.model_id, self.cache = session, series, model_id, cache
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
            fit = self._fits[boundary_s] = self._load(boundary_s) or self._fit(boundary_s)
        return fit

    def _load(self, boundary_s: int) -> SeasonalCycles | None:
        if self.cache is not None:  # a version read, and the fit parsed once per process
            key = (self.series.id, boundary_s)
            return stored_fits(self.session.connection(), self.cache, self.model_id, [key]).get(key)
        row = self.session.get(SeasonalFit, (self.series.id, self.model_id, boundary_s))
        return None if row is None else SeasonalCycles.from_lists(row.cycles)

    def _fit(self, boundary_s: int) -> SeasonalCycles:
        step_s = step_seconds(self.series.freq)
        assert step_s is not None, "stream models train on fixed frequencies only"
        ts, values = fetch_readings(session=self.session, series_id=self.series.id,
                                    start_s=boundary_s - self.fit_steps * step_s,
                                    end_s=boundary_s - 1)
        _, history = on_grid(ts, values, self.series.freq)
        fit = self.fitter.cycles_before(history, len(history))
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
        try:
            with self.session.begin_nested():
                self.session.add(SeasonalFit(series_id=self.series.id, model_id=self.model_id,
                                             boundary_ts=boundary_s, cycles=fit.to_lists(),
                                             version=secrets.randbits(62)))
        except IntegrityError:
            return  # another request stored the same fit first
        # A fit is ~8 KB: kept forever, a fleet's would grow by 800 MB a day per 100,000 meters.
        self.session.execute(delete(SeasonalFit).where(
            SeasonalFit.series_id == self.series.id, SeasonalFit.model_id == self.model_id,
            SeasonalFit.boundary_ts < boundary_s - FIT_RETENTION_S))


FitKey = tuple[int, int]  # (series id, boundary in Unix seconds), of one model


class FitCache:
    """Parsed seasonal fits kept per process (LRU), keyed by model, series, day and version.

    A fit is a few hundred numbers of JSON; parsing it on every post of every stream would cost
    more than the stream's step. The version, read with the post's other rows, tells whether
    the copy here is still the stored one, so no replica ever serves a fit made before a change.
    """

    def __init__(self, max_fits: int) -> None:
        self.max_fits = max_fits
        self._fits: OrderedDict[tuple[int, int, int, int], SeasonalCycles] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int, int]) -> SeasonalCycles | None:
        with self._lock:
            fit = self._fits.get(key)
            if fit is not None:
                self._fits.move_to_end(key)
            return fit

    def put(self, key: tuple[int, int, int, int], fit: SeasonalCycles) -> None:
        with self._lock:
            self._fits[key] = fit
            self._fits.move_to_end(key)
            while len(self._fits) > self.max_fits:
                self._fits.popitem(last=False)


def stored_fits(connection: Connection, cache: FitCache, model_id: int,
                keys: Sequence[FitKey], versions: dict[FitKey, int] | None = None,
                ) -> dict[FitKey, SeasonalCycles]:
    """The stored fits among `keys`: versions in one query (unless the caller read them),
    cycles only for those not cached."""
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
        found[key] = SeasonalCycles.from_lists(cycles)
        cache.put((model_id, *key, version), found[key])
    return found


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
                    cache: "FitCache | None" = None) -> StoredSeasonal | None:
    """The fits a model's stream steps read, or None for models that read none."""
    refuse_profile(forecaster, model_id)
    if not forecaster.needs_seasonal:
        return None
    return StoredSeasonal(session=session, series=series, model_id=model_id,
                          forecaster=forecaster, defer_writes=defer_writes, cache=cache)


def stored_source(session: Session, forecaster: Forecaster, model_id: int, series_id: int,
                  cache: "FitCache | None" = None) -> StoredSeasonal:
    """Where a fit missing from a read ahead (`stored_fits`) comes from: made now and stored."""
    refuse_profile(forecaster, model_id)
    series = session.get(Series, series_id)
    assert series is not None
    return StoredSeasonal(session=session, series=series, model_id=model_id,
                          forecaster=forecaster, cache=cache)


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
