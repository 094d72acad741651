"""Forecasts from the end of a series' stored history."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from app.api.deps import ForecastersDep, SessionDep, SettingsDep, TenantDep
from app.api.params import IdPath, IdQuery
from app.api.schemas import FALLBACK_DESCRIPTION, Fallback, ForecastIn, ForecastOut
from app.api.session_release import SessionReleasingRoute
from app.config import Settings
from app.covariate_inputs import network_inputs, profile_inputs
from app.db import covariates as covariates_db
from app.db import forecast_models as models_db
from app.db import series as series_db
from app.db.engine import lock_for_write
from app.db.tables import ForecastModel, ModelStatus, Series
from app.errors import Conflict, Invalid, field_error
from app.ml.features import CovariateTrack
from app.ml.forecaster import DEFAULT_LEVELS, Forecaster
from app.ml.profile import ProfileSource
from app.streams.history import HistoryRead, read_history, store_state, warm_history
from app.streams.judging import points
from app.streams.model_cache import ForecasterCache
from app.streams.seasonal_fits import StoredSeasonal, seasonal_source
from app.streams.service import run_forecast

router = APIRouter(tags=["forecasts"], route_class=SessionReleasingRoute)

# The upper bound is the configured cap, checked by `check_horizon` alone (one cap, one message);
# the OpenAPI document publishes it as the parameter's maximum (app/api/openapi.py).
HorizonQuery = Annotated[int, Query(
    ge=1, description="Steps ahead, on the series' grid; at most "
    "STATECAST_MAX_FORECAST_HORIZON_STEPS")]
LevelsQuery = Annotated[list[int], Query(
    description=f"Interval levels in percent ({', '.join(map(str, DEFAULT_LEVELS))})")]
WORSE_WARNING = ("Every ready model of this series forecasts worse than the seasonal naive on "
                 "validation data; the seasonal naive (the same time one season earlier) is "
                 "the better forecast.")


COVARIATE_DESCRIPTION = """
A model trained with covariates reads, for each step ahead, the stored readings of its
known-future covariates past the series' last reading (their forecast), or the values sent
inline with `POST`. A horizon they do not cover is a 422 naming the covariate and the last time
it covers: never filled silently. With `fallback=no_covariates` the series' default among its
models that read no covariates serves instead, and the answer says so (`model_id`, `mode`,
`warning`).
"""
FallbackQuery = Annotated[Fallback | None, Query(description=FALLBACK_DESCRIPTION)]


@dataclass(frozen=True)
class ForecastAsk:
    """One forecast request, whether its covariates come from storage (GET) or inline (POST)."""

    horizon: int
    levels: tuple[int, ...]
    model_id: int | None
    covariates: Mapping[str, Sequence[float]]
    fallback: Fallback | None


@router.get("/v1/series/{series_id}/forecast", response_model=ForecastOut,
            summary="Forecast from the end of the stored series",
            description=COVARIATE_DESCRIPTION)
def forecast_series(series_id: IdPath, tenant: TenantDep, session: SessionDep,
                    cache: ForecastersDep, settings: SettingsDep,
                    horizon: HorizonQuery = 48, level: LevelsQuery = list(DEFAULT_LEVELS),  # noqa: B006
                    model_id: Annotated[IdQuery, Query(
                        description="A model of this series (default: the series' default)")
                    ] = None, fallback: FallbackQuery = None) -> ForecastOut:
    ask = ForecastAsk(horizon=horizon, levels=tuple(level), model_id=model_id, covariates={},
                      fallback=fallback)
    return serve_forecast(session=session, cache=cache, settings=settings, tenant_id=tenant.id,
                          series_id=series_id, ask=ask)


@router.post("/v1/series/{series_id}/forecast", response_model=ForecastOut,
             summary="Forecast with known-future covariates sent inline",
             description=COVARIATE_DESCRIPTION)
def forecast_series_inline(series_id: IdPath, body: ForecastIn, tenant: TenantDep,
                           session: SessionDep, cache: ForecastersDep,
                           settings: SettingsDep) -> ForecastOut:
    ask = ForecastAsk(horizon=body.horizon, levels=tuple(body.level), model_id=body.model_id,
                      covariates=body.covariates, fallback=body.fallback)
    return serve_forecast(session=session, cache=cache, settings=settings, tenant_id=tenant.id,
                          series_id=series_id, ask=ask)


def serve_forecast(*, session: Session, cache: ForecasterCache, settings: Settings,
                   tenant_id: int, series_id: int, ask: ForecastAsk) -> ForecastOut:
    check_horizon(ask.horizon, settings)
    # Read, then compute with no transaction open, then store the warmed state in a short
    # write transaction guarded by what was read: on SQLite a write lock held across the
    # computation (seconds for a long horizon) would stall every other writer.
    series = series_db.get_series(session=session, tenant_id=tenant_id, series_id=series_id)
    model = chosen_model(session=session, series=series, model_id=ask.model_id)
    forecaster = cache.get(model.id, model.ready_at)
    read = read_history(session=session, forecaster=forecaster, model_id=model.id,
                        series=series, max_steps=settings.stream_warm_steps)
    names = forecaster.covariates
    profile: ProfileSource | None = None
    track: CovariateTrack | None = None
    try:
        if forecaster.uses_profile:
            profile = read_profile(session=session, series=series, forecaster=forecaster,
                                   model=model, read=read, ask=ask)
        if forecaster.reads_covariates_in_network:
            track = read_network_covariates(session=session, series=series,
                                            forecaster=forecaster, model=model, read=read, ask=ask)
        if not names:
            refuse_inline(model, ask)
    except Invalid as exc:
        plain = fallback_model(session=session, cache=cache, series=series, ask=ask, refused=exc)
        served = serve_forecast(session=session, cache=cache, settings=settings,
                                tenant_id=tenant_id, series_id=series_id,
                                ask=replace(ask, model_id=plain.id, fallback=None))
        fell_back = (f"{exc.detail}. Served by model {plain.id}, which reads no covariates "
                     "(fallback=no_covariates).")
        return served.model_copy(update={"warning": " ".join(
            w for w in (fell_back, served.warning) if w)})
    session.commit()  # ends the read transaction (nothing written; objects stay loaded)
    # Deseasonalised stream models read a seasonal fit per series and day while they warm; the
    # fits they have to make are kept aside and stored with the state. Profile models read
    # their profile instead.
    seasonal = profile if profile is not None else seasonal_source(
        session=session, series=series, model_id=model.id, forecaster=forecaster,
        defer_writes=True)
    warmed = warm_history(forecaster, read, seasonal, track)
    forecast = run_forecast(forecaster, warmed.state, ask.horizon, ask.levels, seasonal, track)
    session.commit()  # ends any read transaction the fits opened: the write lock comes fresh
    fits = seasonal if isinstance(seasonal, StoredSeasonal) else None
    if warmed.changed or (fits is not None and fits.pending):
        lock_for_write(session)
        unchanged = store_state(session=session, read=read, warmed=warmed) or not warmed.changed
        if fits is not None and unchanged:
            fits.store_pending()  # fits of readings an upload changed meanwhile are dropped
    session.commit()
    return ForecastOut(series_id=series.id, model_id=model.id, freq=series.freq,
                       mode="covariates" if names else "no_covariates", covariates=list(names),
                       points=points(forecast), worse_than_naive=model.worse_than_naive,
                       warning=WORSE_WARNING if model.worse_than_naive else None)


def chosen_model(*, session: Session, series: Series, model_id: int | None) -> ForecastModel:
    """The model asked for (a ready model of the series), else the series' default."""
    if model_id is not None:
        model = models_db.get_model(session=session, tenant_id=series.tenant_id,
                                    model_id=model_id)
        if series.id not in models_db.series_ids(session=session, model_id=model.id):
            raise Invalid(f"Model {model.id} was not trained on series {series.id}",
                          errors=[field_error("model_id", model_id, "not a model of the series")])
        if model.status != ModelStatus.READY:
            raise Conflict(f"Model {model.id} is {model.status}, not ready")
        return model
    default = models_db.default_model(session=session, series_id=series.id)
    if default is None:
        raise models_db.no_ready_model(session=session, series_id=series.id)
    return default


def read_profile(*, session: Session, series: Series, forecaster: Forecaster,
                 model: ForecastModel, read: HistoryRead, ask: ForecastAsk) -> ProfileSource:
    """The profile a profile model reads over the history it warms over and the horizon."""
    first_s, last_s = _history_span(read)
    return profile_inputs(session=session, series=series, forecaster=forecaster,
                          model_id=model.id, first_s=first_s, last_s=last_s,
                          horizon=ask.horizon, inline=ask.covariates)


def read_network_covariates(*, session: Session, series: Series, forecaster: Forecaster,
                            model: ForecastModel, read: HistoryRead,
                            ask: ForecastAsk) -> CovariateTrack:
    """The covariates a network reads over the history it warms over and the horizon."""
    first_s, last_s = _history_span(read)
    return network_inputs(session=session, series=series, forecaster=forecaster,
                          model_id=model.id, first_s=first_s, last_s=last_s,
                          horizon=ask.horizon, inline=ask.covariates)


def _history_span(read: HistoryRead) -> tuple[int, int]:
    """The first and last reading times (s) a forecast warms over: the history read, or only
    the cached state's last reading when none was read."""
    last_s = int(read.ts[-1]) if len(read.ts) else read.cached_last_ts
    if last_s is None:
        raise Conflict("Cannot forecast yet: the series has no readings")
    return (int(read.ts[0]) if len(read.ts) else last_s), last_s


def refuse_inline(model: ForecastModel, ask: ForecastAsk) -> None:
    """Invalid for inline covariates sent to a model that reads none."""
    for name, values in ask.covariates.items():
        raise Invalid(f"Model {model.id} reads no covariates; {name!r} would not be read",
                      errors=[field_error(f"covariates.{name}", list(values),
                                          "the model reads no covariates")])


def fallback_model(*, session: Session, cache: ForecasterCache, series: Series,
                   ask: ForecastAsk, refused: Invalid) -> ForecastModel:
    """The model `fallback=no_covariates` serves when the covariates were refused: the series'
    default among its models that read none; else the refusal itself."""
    if ask.fallback != "no_covariates" or ask.covariates:
        raise refused
    plain = [model.id for model in covariates_db.ready_models(session=session, series_id=series.id)
             if not cache.get(model.id, model.ready_at).covariates]
    ref = models_db.default_model_ref(session=session, series_id=series.id, among=plain)
    if ref is None:
        raise Conflict(f"{refused.detail}; and the series has no ready model that reads no "
                       "covariates to fall back on",
                       errors=[*refused.errors, field_error(
                           "fallback", ask.fallback, "no model without covariates")])
    model = session.get(ForecastModel, ref.id)
    assert model is not None
    return model


def check_horizon(horizon: int, settings: Settings) -> None:
    """Refuse horizons past the configured cap: the rollout's cost grows with each step."""
    cap = settings.max_forecast_horizon_steps
    if horizon > cap:
        raise Invalid(f"horizon must be at most {cap} steps (STATECAST_MAX_FORECAST_HORIZON_STEPS)",
                      errors=[field_error("horizon", horizon, f"above the cap of {cap} steps")])
