"""Forecasts from the end of a series' stored history."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from app.api.deps import ForecastersDep, SessionDep, SettingsDep, TenantDep
from app.api.params import IdPath, IdQuery
from app.api.routing import SessionReleasingRoute
from app.api.schemas import FALLBACK_DESCRIPTION, Fallback, ForecastIn, ForecastOut
from app.config import Settings
from app.covariate_inputs import forecast_covariates
from app.db import covariates as covariates_db
from app.db import forecast_models as models_db
from app.db import series as series_db
from app.db.engine import lock_for_write
from app.db.tables import ForecastModel, Series
from app.errors import Conflict, Invalid, Unavailable, field_error
from app.streams.history import HistoryRead, read_history, store_state, warm_history
from app.streams.model_cache import ForecasterCache
from app.streams.seasonal_fits import seasonal_source
from app.streams.service import points, run_forecast
from app.timegrid import following, on_grid

router = APIRouter(tags=["forecasts"], route_class=SessionReleasingRoute)

MAX_HORIZON_STEPS = 10_000
HorizonQuery = Annotated[int, Query(ge=1, le=MAX_HORIZON_STEPS,
                                    description="Steps ahead, on the series' grid")]
LevelsQuery = Annotated[list[int], Query(description="Interval levels in percent (80, 95)")]
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
                    horizon: HorizonQuery = 48, level: LevelsQuery = [80, 95],  # noqa: B006
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
    names = tuple(forecaster.spec.covariates)
    warning = WORSE_WARNING if model.worse_than_naive else None
    if names or ask.covariates:
        try:
            covariates = read_covariates(session=session, series=series, model=model,
                                         names=names, read=read, ask=ask)
        except Invalid as exc:
            plain = fallback_model(session=session, series=series, ask=ask, refused=exc)
            return serve_forecast(
                session=session, cache=cache, settings=settings, tenant_id=tenant_id,
                series_id=series_id,
                ask=replace(ask, model_id=plain.id, covariates={}, fallback=None)
            ).model_copy(update={"warning": f"{exc.detail}. Served by model {plain.id}, which "
                                            "reads no covariates (fallback=no_covariates)."})
        if covariates:  # until the forecaster takes covariates (cov-model), never ignore them
            raise Unavailable(f"Model {model.id} reads covariates {list(names)}, which this "
                              "server cannot feed to a forecast yet")
    session.commit()  # ends the read transaction (nothing written; objects stay loaded)
    # Deseasonalised stream models read a seasonal fit per series and day while they warm; the
    # fits they have to make are kept aside and stored with the state.
    seasonal = seasonal_source(session=session, series=series, model_id=model.id,
                               forecaster=forecaster, defer_writes=True)
    warmed = warm_history(forecaster, read, seasonal)
    forecast = run_forecast(forecaster, warmed.state, ask.horizon, ask.levels, seasonal)
    session.commit()  # ends any read transaction the fits opened: the write lock comes fresh
    pending = seasonal is not None and bool(seasonal.pending)
    if warmed.changed or pending:
        lock_for_write(session)
        unchanged = store_state(session=session, read=read, warmed=warmed) or not warmed.changed
        if seasonal is not None and unchanged:
            seasonal.store_pending()  # fits of readings an upload changed meanwhile are dropped
    session.commit()
    return ForecastOut(series_id=series.id, model_id=model.id, freq=series.freq,
                       mode="covariates" if names else "no_covariates", covariates=list(names),
                       points=points(forecast), worse_than_naive=model.worse_than_naive,
                       warning=warning)


def chosen_model(*, session: Session, series: Series, model_id: int | None) -> ForecastModel:
    """The model asked for (a ready model of the series), else the series' default."""
    if model_id is not None:
        model = models_db.get_model(session=session, tenant_id=series.tenant_id,
                                    model_id=model_id)
        if series.id not in models_db.series_ids(session=session, model_id=model.id):
            raise Invalid(f"Model {model.id} was not trained on series {series.id}",
                          errors=[field_error("model_id", model_id, "not a model of the series")])
        if model.status != "ready":
            raise Conflict(f"Model {model.id} is {model.status}, not ready")
        return model
    default = models_db.default_model(session=session, series_id=series.id)
    if default is None:
        raise Conflict("The series has no ready model yet: train one with POST /v1/models")
    return default


def read_covariates(*, session: Session, series: Series, model: ForecastModel,
                    names: tuple[str, ...], read: HistoryRead, ask: ForecastAsk
                    ) -> dict[str, np.ndarray]:
    """The covariates the model reads over the history it warms over and the horizon."""
    history_s, _ = on_grid(read.ts, read.values, series.freq)
    last_s = int(read.ts[-1]) if len(read.ts) else read.cached_last_ts
    if last_s is None:
        raise Conflict("Cannot forecast yet: the series has no readings")
    return forecast_covariates(session=session, series=series, model_id=model.id, names=names,
                               history_s=history_s,
                               future_s=following(last_s, series.freq, ask.horizon),
                               inline=ask.covariates)


def fallback_model(*, session: Session, series: Series, ask: ForecastAsk,
                   refused: Invalid) -> ForecastModel:
    """The model `fallback=no_covariates` serves when the covariates were refused; else the
    refusal itself."""
    if ask.fallback != "no_covariates" or ask.covariates:
        raise refused
    ref = models_db.default_model_ref(session=session, series_id=series.id, among=(
        covariates_db.models_without_covariates(session=session, series_id=series.id)))
    if ref is None:
        raise Conflict(f"{refused.detail}; and the series has no ready model that reads no "
                       "covariates to fall back on",
                       errors=[*refused.errors, field_error(
                           "fallback", ask.fallback, "no model without covariates")])
    plain = session.get(ForecastModel, ref.id)
    assert plain is not None
    return plain


def check_horizon(horizon: int, settings: Settings) -> None:
    """Refuse horizons past the configured cap: the rollout's cost grows with each step."""
    cap = settings.max_forecast_horizon_steps
    if horizon > cap:
        raise Invalid(f"horizon must be at most {cap} steps (STATECAST_MAX_FORECAST_HORIZON_STEPS)",
                      errors=[field_error("horizon", horizon, f"above the cap of {cap} steps")])
