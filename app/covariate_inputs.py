"""A series' covariates and calendar as the ML core takes them: arrays on the series' grid and a
`CalendarSpec`, read from storage for training and serving alike.

Alignment (a covariate of another frequency onto the series' grid) is the ML core's rule,
`app.ml.covariates.align`; this module only reads the readings it needs and hands them over.
"""

from collections.abc import Collection, Mapping, Sequence
from functools import partial

import numpy as np
from sqlalchemy.orm import Session

from app.covariate_cache import PROCESS_CACHE, PROFILE_AHEAD_S, CovariateCache
from app.db import covariates as covariates_db
from app.db.covariates import ReadLink
from app.db.series import SeriesTraits, calendar_spec
from app.db.tables import Series, SeriesCovariate
from app.errors import Conflict, Invalid, field_error
from app.ml.calendar import CalendarSpec
from app.ml.covariates import CovariateCoverageError, align, require_covered
from app.ml.features import CovariateTrack
from app.ml.forecaster import Forecaster
from app.ml.profile import ProfileSource
from app.timegrid import NS_PER_S, step_seconds, to_iso

# Readings fetched either side of the grid, so that its first and last steps can interpolate
# between the covariate's readings around them; a calendar frequency's longest step.
DAY_S = 86_400
CALENDAR_STEP_S = 92 * DAY_S


def calendar_of(series: Series) -> CalendarSpec | None:
    """The series' holidays and special days, or None when it has neither."""
    return calendar_spec(series.holidays, series.special_days)


def check_linked(linked: Collection[str], names: Sequence[str], field: str) -> None:
    """Invalid naming `field` and the first of `names` that is not among the `linked` ones."""
    missing = [n for n in names if n not in linked]
    if missing:
        raise Invalid(f"The series has no covariate named {missing[0]!r} (it has "
                      f"{sorted(linked) or 'none'}); link it with PATCH /v1/series/{{id}}",
                      errors=[field_error(field, list(names), f"no covariate {missing[0]!r}")])


def used_links(links: Sequence[SeriesCovariate], names: Sequence[str] | None,
               field: str) -> list[SeriesCovariate]:
    """The links a model reads: those of `names` (None: all); Invalid as `check_linked`."""
    if names is None:
        return list(links)
    by_name = {link.name: link for link in links}
    check_linked(by_name, names, field)
    return [by_name[n] for n in names]


def aligned_covariates(*, session: Session, links: Sequence[SeriesCovariate],
                       grid_s: np.ndarray) -> dict[str, np.ndarray]:
    """Each linked covariate's stored readings on `grid_s` (Unix seconds), NaN where none."""
    aligned: dict[str, np.ndarray] = {}
    for link in links:
        if len(grid_s) == 0:
            aligned[link.name] = np.empty(0)
            continue
        covariate = session.get(Series, link.covariate_series_id)
        assert covariate is not None  # links cascade with their series
        margin_s = step_seconds(covariate.freq) or CALENDAR_STEP_S
        ts_s, values = covariates_db.covariate_readings(
            session=session, link=link, start_s=int(grid_s[0]) - margin_s,
            end_s=int(grid_s[-1]) + margin_s)
        aligned[link.name] = align(ts_s, values, grid_s)
    return aligned


def check_horizon_covered(covariates: Mapping[str, np.ndarray], future_s: np.ndarray,
                          field: str = "horizon") -> None:
    """Invalid naming the covariate and the last time it covers, unless every covariate has a
    value at every forecast step (`covariates` aligned to `future_s`). Never filled silently."""
    for name, values in covariates.items():
        try:
            require_covered(name, values, future_s)
        except CovariateCoverageError as exc:
            until = None if exc.covered_until_s is None else to_iso(int(exc.covered_until_s))
            raise Invalid(
                f"Covariate {name!r} covers the forecast until {until or 'no step at all'}, "
                f"but the horizon runs to {to_iso(int(future_s[-1]))}: upload its forecast "
                "further ahead, shorten the horizon, send the values inline (POST), or send "
                "`fallback=no_covariates`",
                errors=[field_error(field, len(future_s), f"covariate {name!r} covers until "
                                    f"{until}", covariate=name, covered_until=until)]) from None


def _links_read(*, session: Session, series: Series, model_id: int,
                names: Sequence[str]) -> dict[str, SeriesCovariate]:
    """The series' links by name; Conflict if it no longer links one of the model's `names`."""
    links = {link.name: link for link in covariates_db.links_of(session=session,
                                                                series_id=series.id)}
    _check_still_linked(links, names, series.id, model_id)
    return links


def forecast_covariates(*, session: Session, series: Series, model_id: int,
                        names: Sequence[str], history_s: np.ndarray, future_s: np.ndarray,
                        inline: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """What a model that reads `names` needs for one forecast: each covariate on the history's
    grid `history_s` followed by the forecast steps `future_s`.

    A known-future covariate's steps ahead come from `inline` (one value per step) or else from
    its stored readings, and must all be there; a past-only one's are NaN.

    Raises:
        Invalid: an inline covariate the model does not read as known-future, or of another
            length than the horizon; a known-future covariate that does not cover the horizon.
        Conflict: the series no longer links a covariate the model reads.
    """
    links = _links_read(session=session, series=series, model_id=model_id, names=names)
    known_future = [n for n in names if links[n].known_future]
    for name, values in inline.items():
        if name not in known_future:
            raise Invalid(f"Model {model_id} reads no known-future covariate {name!r} (it reads "
                          f"{known_future or 'none'})",
                          errors=[field_error(f"covariates.{name}", list(values),
                                              "not a known-future covariate of the model")])
        if len(values) != len(future_s):
            raise Invalid(f"Covariate {name!r} has {len(values)} values for a horizon of "
                          f"{len(future_s)} steps: send one per step ahead",
                          errors=[field_error(f"covariates.{name}", len(values),
                                              f"expected {len(future_s)} values")])
    used = [links[n] for n in names]
    history = aligned_covariates(session=session, links=used, grid_s=history_s)
    future = aligned_covariates(session=session, links=[links[n] for n in known_future
                                                        if n not in inline], grid_s=future_s)
    future.update({n: np.asarray(v, dtype=np.float64) for n, v in inline.items()})
    check_horizon_covered(future, future_s)
    blank = np.full(len(future_s), np.nan)
    return {n: np.concatenate([history[n], future.get(n, blank)]) for n in names}


def profile_inputs(*, session: Session, series: Series, forecaster: Forecaster, model_id: int,
                   first_s: int, last_s: int, horizon: int,
                   inline: Mapping[str, Sequence[float]]) -> ProfileSource:
    """What a profile model (trained on a series with a calendar or covariates) reads for one
    forecast from `last_s`, warmed over readings from `first_s`: its profile from a day before
    the history it reads (a covariate's past-day mean) to the end of the horizon, with the
    covariates there and the series' calendar as it is now.

    Raises:
        Invalid, Conflict: as `forecast_covariates`.
    """
    step_s = _profile_step_s(series.freq, model_id)
    start_s = min(first_s, last_s - forecaster.context_steps * step_s) - DAY_S
    history_s = last_s - step_s * np.arange(-(-(last_s - start_s) // step_s), -1, -1,
                                             dtype=np.int64)
    future_s = last_s + step_s * np.arange(1, horizon + 1, dtype=np.int64)
    covariates = forecast_covariates(session=session, series=series, model_id=model_id,
                                     names=forecaster.covariates, history_s=history_s,
                                     future_s=future_s, inline=inline)
    # A rollout computes whole heads: the steps of its last head past the horizon read the
    # profile too, and are discarded; their covariates are missing (the profile's mean).
    head = forecaster.spec.horizon
    beyond_s = future_s[-1] + step_s * np.arange(1, head + 1, dtype=np.int64)
    padded = {name: np.concatenate([values, np.full(head, np.nan)])
              for name, values in covariates.items()}
    ns = np.concatenate([history_s, future_s, beyond_s]) * NS_PER_S
    return forecaster.profile_source(ns, padded, calendar_of(series), series=series.name)


def network_inputs(*, session: Session, series: Series, forecaster: Forecaster, model_id: int,
                   first_s: int, last_s: int, horizon: int,
                   inline: Mapping[str, Sequence[float]]) -> CovariateTrack:
    """What a model whose network reads covariates (`covariate_inputs`) reads for one forecast
    from `last_s`, warmed over readings from `first_s`: each covariate over the windows it reads
    and the horizon, which its known-future ones must cover (as `forecast_covariates`).

    A rollout computes whole heads: the steps of its last head past the horizon read the
    covariates as missing (masked), as the profile reads its mean there.

    Raises:
        Invalid, Conflict: as `forecast_covariates`.
    """
    step_s = _profile_step_s(series.freq, model_id)
    start_s = min(first_s, last_s) - forecaster.context_steps * step_s
    history_s = last_s - step_s * np.arange((last_s - start_s) // step_s, -1, -1, dtype=np.int64)
    future_s = last_s + step_s * np.arange(1, horizon + 1, dtype=np.int64)
    names = forecaster.features.network_covariates
    covariates = forecast_covariates(session=session, series=series, model_id=model_id,
                                     names=names, history_s=history_s, future_s=future_s,
                                     inline={n: v for n, v in inline.items() if n in names})
    return forecaster.covariate_track(np.concatenate([history_s, future_s]) * NS_PER_S,
                                      covariates)


def stepping_profile(*, session: Session, series: SeriesTraits, forecaster: Forecaster,
                     model_id: int, first_s: int, last_s: int,
                     cache: CovariateCache = PROCESS_CACHE) -> ProfileSource:
    """What a profile model's stream on `series` reads while it steps over readings from
    `first_s` to `last_s` (grid times): its profile from a day (and a window model's context)
    before `first_s` to a head after `last_s`, for the one-step forecast after the last reading.

    Each covariate is read as stored, at each reading's time: a reading is stepped with the
    covariate's value then. A value not stored (NaN) is never filled: that covariate's terms
    read their training mean there. A past-only covariate is not read past `last_s`, as a
    forecast does not read it over the horizon.

    The links and their covariates' versions are one read; the readings, and for a model whose
    covariates are all known-future the profile itself (over `PROFILE_AHEAD_S` more), come from
    the process's `cache` while those versions hold.

    Raises:
        Conflict: as `forecast_covariates` (a covariate the model reads is no longer linked).
    """
    step_s = _profile_step_s(series.freq, model_id)
    before = forecaster.context_steps + -(-DAY_S // step_s)
    # A head past the last reading: a window model's one-step forecast computes a whole head.
    after = forecaster.spec.horizon
    start_s, end_s = first_s - before * step_s, last_s + after * step_s
    links = covariates_db.read_links(session=session, series_id=series.id)
    _check_still_linked(links, forecaster.covariates, series.id, model_id)
    used = [links[n] for n in forecaster.covariates]
    calendar = series.calendar
    if any(not link.known_future for link in used):  # read as of `last_s`: nothing to share
        grid_s = start_s + step_s * np.arange((end_s - start_s) // step_s + 1, dtype=np.int64)
        covariates = _kept_aligned(session, cache, used, grid_s)
        for link in used:
            if not link.known_future:
                covariates[link.name][grid_s > last_s] = np.nan
        return forecaster.profile_source(grid_s * NS_PER_S, covariates, calendar,
                                         series=series.name)
    key = ("stepping", model_id, series,
           tuple((link.name, link.covariate_series_id, link.readings_version) for link in used))
    kept = cache.profile(key, forecaster, start_s * NS_PER_S, end_s * NS_PER_S)
    if kept is not None:
        return kept
    # A profile at a time reads the covariates within a day before it only: computed ahead, it
    # serves the posts to come unchanged.
    end_s += -(-PROFILE_AHEAD_S // step_s) * step_s
    grid_s = start_s + step_s * np.arange((end_s - start_s) // step_s + 1, dtype=np.int64)
    source = forecaster.profile_source(grid_s * NS_PER_S, _kept_aligned(session, cache, used, grid_s),
                                       calendar, series=series.name)
    cache.keep_profile(key, forecaster, source)
    return source


def stepping_track(*, session: Session, series: Series, forecaster: Forecaster, model_id: int,
                   first_s: int, last_s: int,
                   cache: CovariateCache = PROCESS_CACHE) -> CovariateTrack:
    """What a stream model whose network reads covariates reads while it steps over readings
    from `first_s` to `last_s` (grid times): each covariate's stored value at each reading's
    time, and over a head after each for the forecast the step makes.

    A value not stored (NaN) is masked (0, flag off), never filled. A past-only covariate is not
    read past `last_s`, as a forecast does not read it over the horizon. The links are the one
    links statement; the readings come from the process's `cache` while their versions hold.

    Raises:
        Conflict: as `forecast_covariates` (a covariate the model reads is no longer linked).
    """
    step_s = _profile_step_s(series.freq, model_id)
    names = forecaster.features.network_covariates
    links = covariates_db.read_links(session=session, series_id=series.id)
    _check_still_linked(links, names, series.id, model_id)
    used = [links[n] for n in names]
    end_s = last_s + forecaster.spec.horizon * step_s
    grid_s = first_s + step_s * np.arange((end_s - first_s) // step_s + 1, dtype=np.int64)
    covariates = _kept_aligned(session, cache, used, grid_s)
    for link in used:
        if not link.known_future:
            covariates[link.name][grid_s > last_s] = np.nan
    return forecaster.covariate_track(grid_s * NS_PER_S, covariates)


def _check_still_linked(links: Mapping[str, object], names: Sequence[str], series_id: int,
                        model_id: int) -> None:
    """Conflict if the series no longer links one of the model's covariates `names`."""
    unlinked = [n for n in names if n not in links]
    if unlinked:
        raise Conflict(f"Model {model_id} reads covariate {unlinked[0]!r}, which series "
                       f"{series_id} no longer links: link it again, or forecast with another "
                       "model", errors=[field_error("model_id", model_id,
                                                    f"reads unlinked covariate {unlinked[0]!r}")])


def _kept_aligned(session: Session, cache: CovariateCache, links: Sequence[ReadLink],
                  grid_s: np.ndarray) -> dict[str, np.ndarray]:
    """As `aligned_covariates`, with the readings from the process's `cache` where current."""
    aligned: dict[str, np.ndarray] = {}
    for link in links:
        margin_s = step_seconds(link.freq) or CALENDAR_STEP_S
        ts_s, values = cache.readings(
            link.covariate_series_id, link.readings_version, int(grid_s[0]) - margin_s,
            int(grid_s[-1]) + margin_s, partial(_fetch, session, link))
        aligned[link.name] = align(ts_s, values, grid_s)
    return aligned


def _fetch(session: Session, link: ReadLink, start_s: int,
           end_s: int) -> tuple[np.ndarray, np.ndarray]:
    return covariates_db.covariate_readings(session=session, link=link, start_s=start_s,
                                            end_s=end_s)


def _profile_step_s(freq: str, model_id: int) -> int:
    step_s = step_seconds(freq)
    if step_s is None:
        raise Conflict(f"Model {model_id} reads a profile, which needs a fixed step; the "
                       f"series' frequency {freq} has none")
    return step_s
