"""What a stream's model reads beside its readings: a deseasonalised model's stored seasonal fits
(`seasonal_fits`), or a profile model's profile over the series' stored covariates and calendar
(`app.covariate_inputs`), for the readings it steps over and for the forecasts it makes; and a
network that reads covariates, their stored values at each step (`stepping_covariates`,
`forecast_covariates`).
"""

from sqlalchemy.orm import Session

from app.covariate_inputs import network_inputs, profile_inputs, stepping_profile, stepping_track
from app.db.series import SeriesTraits
from app.db.tables import Series
from app.ml.features import CovariateTrack
from app.ml.forecaster import Forecaster
from app.ml.stream_seasonal import SeasonalSource
from app.ml.stream_state import State
from app.streams.seasonal_fits import FitCache, seasonal_source
from app.timegrid import NS_PER_S


def stepping_source(*, session: Session, series: Series, forecaster: Forecaster, model_id: int,
                    first_s: int | None, last_s: int | None, cache: FitCache | None = None,
                    stale_ok: bool = False) -> SeasonalSource | None:
    """What the model reads stepping over readings from `first_s` to `last_s` and forecasting
    the step after them; None where it reads nothing (or, for a profile, there is nothing to
    step over). `stale_ok`: as `seasonal_fits.seasonal_source` (a post never fits)."""
    if not forecaster.uses_profile:
        return seasonal_source(session=session, series=series, model_id=model_id,
                               forecaster=forecaster, cache=cache, stale_ok=stale_ok)
    if first_s is None or last_s is None:
        return None
    return stepping_profile(session=session, series=SeriesTraits.of(series), forecaster=forecaster,
                            model_id=model_id, first_s=first_s, last_s=last_s)


def profile_forecast_source(*, session: Session, series: Series, forecaster: Forecaster,
                            model_id: int, state: State, horizon: int) -> SeasonalSource | None:
    """A profile model's profile for a forecast of `horizon` steps from a stream's `state`: the
    known-future covariates must cover the horizon, as for a series forecast."""
    if state.last_ns is None:
        return None
    last_s = state.last_ns // NS_PER_S
    return profile_inputs(session=session, series=series, forecaster=forecaster,
                          model_id=model_id, first_s=last_s, last_s=last_s, horizon=horizon,
                          inline={})


def stepping_covariates(*, session: Session, series: Series, forecaster: Forecaster,
                        model_id: int, first_s: int | None,
                        last_s: int | None) -> CovariateTrack | None:
    """The covariates a network reads stepping over readings from `first_s` to `last_s` and
    forecasting the step after them (`covariate_inputs.stepping_track`); None where it reads
    none, or there is nothing to step over."""
    if not forecaster.reads_covariates_in_network or first_s is None or last_s is None:
        return None
    return stepping_track(session=session, series=series, forecaster=forecaster,
                          model_id=model_id, first_s=first_s, last_s=last_s)


def forecast_covariates(*, session: Session, series: Series, forecaster: Forecaster,
                        model_id: int, state: State, horizon: int) -> CovariateTrack | None:
    """The covariates a network reads for a forecast of `horizon` steps from a stream's
    `state`: the known-future ones must cover the horizon, as for a series forecast (Invalid
    naming the covariate otherwise; never filled). None where the network reads none."""
    if not forecaster.reads_covariates_in_network or state.last_ns is None:
        return None
    last_s = state.last_ns // NS_PER_S
    return network_inputs(session=session, series=series, forecaster=forecaster,
                          model_id=model_id, first_s=last_s, last_s=last_s, horizon=horizon,
                          inline={})
