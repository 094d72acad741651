"""Forecasts from the end of a series' stored history."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ForecastersDep, SessionDep, SettingsDep, TenantDep
from app.api.params import IdPath, IdQuery
from app.api.schemas import ForecastOut
from app.api.session_release import SessionReleasingRoute
from app.config import Settings
from app.db import forecast_models as models_db
from app.db import series as series_db
from app.db.engine import lock_for_write
from app.db.tables import ForecastModel, ModelStatus, Series
from app.errors import Conflict, Invalid, field_error
from app.ml.forecaster import DEFAULT_LEVELS
from app.streams.history import read_history, store_state, warm_history
from app.streams.judging import points
from app.streams.seasonal_fits import seasonal_source
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


def forecast_out(series: Series, model: ForecastModel, points_: list[dict[str, object]],
                 ) -> ForecastOut:
    return ForecastOut(series_id=series.id, model_id=model.id, freq=series.freq, points=points_,
                       worse_than_naive=model.worse_than_naive,
                       warning=WORSE_WARNING if model.worse_than_naive else None)


@router.get("/v1/series/{series_id}/forecast", response_model=ForecastOut,
            summary="Forecast from the end of the stored series")
def forecast_series(series_id: IdPath, tenant: TenantDep, session: SessionDep,
                    cache: ForecastersDep, settings: SettingsDep,
                    horizon: HorizonQuery = 48, level: LevelsQuery = list(DEFAULT_LEVELS),  # noqa: B006
                    model_id: Annotated[IdQuery, Query(
                        description="A model of this series (default: the series' default)")
                    ] = None) -> ForecastOut:
    check_horizon(horizon, settings)
    # Read, then compute with no transaction open, then store the warmed state in a short
    # write transaction guarded by what was read: on SQLite a write lock held across the
    # computation (seconds for a long horizon) would stall every other writer.
    series = series_db.get_series(session=session, tenant_id=tenant.id, series_id=series_id)
    if model_id is not None:
        model = models_db.get_model(session=session, tenant_id=tenant.id, model_id=model_id)
        if series.id not in models_db.series_ids(session=session, model_id=model.id):
            raise Invalid(f"Model {model.id} was not trained on series {series.id}",
                          errors=[field_error("model_id", model_id, "not a model of the series")])
        if model.status != ModelStatus.READY:
            raise Conflict(f"Model {model.id} is {model.status}, not ready")
    else:
        default = models_db.default_model(session=session, series_id=series.id)
        if default is None:
            raise models_db.no_ready_model(session=session, series_id=series.id)
        model = default
    forecaster = cache.get(model.id, model.ready_at)
    read = read_history(session=session, forecaster=forecaster, model_id=model.id,
                        series=series, max_steps=settings.stream_warm_steps)
    session.commit()  # ends the read transaction (nothing written; objects stay loaded)
    # Deseasonalised stream models read a seasonal fit per series and day while they warm; the
    # fits they have to make are kept aside and stored with the state.
    seasonal = seasonal_source(session=session, series=series, model_id=model.id,
                               forecaster=forecaster, defer_writes=True)
    warmed = warm_history(forecaster, read, seasonal)
    forecast = run_forecast(forecaster, warmed.state, horizon, tuple(level), seasonal)
    session.commit()  # ends any read transaction the fits opened: the write lock comes fresh
    pending = seasonal is not None and bool(seasonal.pending)
    if warmed.changed or pending:
        lock_for_write(session)
        unchanged = store_state(session=session, read=read, warmed=warmed) or not warmed.changed
        if seasonal is not None and unchanged:
            seasonal.store_pending()  # fits of readings an upload changed meanwhile are dropped
    session.commit()
    return forecast_out(series, model, points(forecast))


def check_horizon(horizon: int, settings: Settings) -> None:
    """Refuse horizons past the configured cap: the rollout's cost grows with each step."""
    cap = settings.max_forecast_horizon_steps
    if horizon > cap:
        raise Invalid(f"horizon must be at most {cap} steps (STATECAST_MAX_FORECAST_HORIZON_STEPS)",
                      errors=[field_error("horizon", horizon, f"above the cap of {cap} steps")])
