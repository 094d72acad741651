"""Forecasts from the end of a series' stored history."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ForecastersDep, SessionDep, SettingsDep, TenantDep
from app.api.params import IdPath, IdQuery
from app.api.schemas import ForecastOut
from app.db import forecast_models as models_db
from app.db import series as series_db
from app.db.engine import lock_for_write
from app.db.tables import ForecastModel, Series
from app.errors import Conflict, Invalid, field_error
from app.streams.history import history_state
from app.streams.seasonal_fits import seasonal_source
from app.streams.service import points, run_forecast

router = APIRouter(tags=["forecasts"])

MAX_HORIZON_STEPS = 10_000
HorizonQuery = Annotated[int, Query(ge=1, le=MAX_HORIZON_STEPS,
                                    description="Steps ahead, on the series' grid")]
LevelsQuery = Annotated[list[int], Query(description="Interval levels in percent (80, 95)")]
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
                    horizon: HorizonQuery = 48, level: LevelsQuery = [80, 95],  # noqa: B006
                    model_id: Annotated[IdQuery, Query(
                        description="A model of this series (default: the series' default)")
                    ] = None) -> ForecastOut:
    lock_for_write(session)  # the warmed state may be stored
    series = series_db.get_series(session=session, tenant_id=tenant.id, series_id=series_id)
    if model_id is not None:
        model = models_db.get_model(session=session, tenant_id=tenant.id, model_id=model_id)
        if series.id not in models_db.series_ids(session=session, model_id=model.id):
            raise Invalid(f"Model {model.id} was not trained on series {series.id}",
                          errors=[field_error("model_id", model_id, "not a model of the series")])
        if model.status != "ready":
            raise Conflict(f"Model {model.id} is {model.status}, not ready")
    else:
        default = models_db.default_model(session=session, series_id=series.id)
        if default is None:
            raise Conflict("The series has no ready model yet: train one with POST /v1/models")
        model = default
    forecaster = cache.get(model.id, model.ready_at)
    state = history_state(session=session, forecaster=forecaster, model_id=model.id,
                          series=series, max_steps=settings.stream_warm_steps)
    seasonal = seasonal_source(session=session, series=series, model_id=model.id,
                               forecaster=forecaster)
    forecast = run_forecast(forecaster, state, horizon, tuple(level), seasonal)
    session.commit()
    return forecast_out(series, model, points(forecast))
