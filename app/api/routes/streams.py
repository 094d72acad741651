"""Streams: live feeds whose model state the server keeps between requests."""

import contextlib
from datetime import UTC, datetime
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Response
from sqlalchemy import func, select

from app.api.deps import ForecastersDep, SessionDep, SettingsDep, TenantDep
from app.api.params import IdQuery, Offset, StreamIdPath
from app.api.routes.forecasts import HorizonQuery, LevelsQuery, check_horizon
from app.api.schemas import (
    Page,
    ReadingsIn,
    StreamCreate,
    StreamPosted,
    StreamPublic,
)
from app.db import forecast_models as models_db
from app.db import series as series_db
from app.db.engine import lock_for_write
from app.db.tables import ForecastModel, Series, Stream
from app.errors import Conflict, field_error
from app.ingest import MAX_REPORTED_ROWS, ReadingsBatch, checked_batch
from app.observability.metrics import STREAM_READINGS
from app.streams import accuracy
from app.streams import service as streams
from app.streams.seasonal_fits import seasonal_source
from app.timegrid import NS_PER_S, to_iso

router = APIRouter(prefix="/v1/streams", tags=["streams"])


def to_public(session: SessionDep, cache: ForecastersDep, stream: Stream) -> StreamPublic:
    scale = None
    if stream.model_id is not None:
        model = session.get(ForecastModel, stream.model_id)
        series = session.get(Series, stream.series_id)
        if model is not None and model.status == "ready" and series is not None:
            scale = streams.mase_scale(cache.get(model.id, model.ready_at), series)
    return StreamPublic(
        id=stream.name, series_id=stream.series_id, model_id=stream.model_id,
        pinned=stream.pinned,
        last_ts=None if stream.last_ts is None else datetime.fromtimestamp(stream.last_ts, UTC),
        readings_applied=stream.readings_applied, next_forecast=stream.next_forecast,
        accuracy=accuracy.summary(stream.accuracy, scale), created_at=stream.created_at,
        updated_at=stream.updated_at)


@router.post("", status_code=201, response_model=StreamPublic,
             summary="Start a stream over a series, warmed over its stored history")
def create_stream(body: StreamCreate, tenant: TenantDep, session: SessionDep,
                  cache: ForecastersDep, settings: SettingsDep) -> StreamPublic:
    lock_for_write(session)
    series = series_db.get_series(session=session, tenant_id=tenant.id,
                                  series_id=body.series_id)
    model = None if body.model_id is None else models_db.get_model(
        session=session, tenant_id=tenant.id, model_id=body.model_id)
    stream = streams.create_stream(session=session, cache=cache, settings=settings,
                                   tenant_id=tenant.id, series=series, model=model,
                                   name=body.stream_id)
    session.commit()
    return to_public(session, cache, stream)


@router.get("", response_model=Page[StreamPublic], summary="List streams")
def list_streams(tenant: TenantDep, session: SessionDep, cache: ForecastersDep,
                 series_id: IdQuery = None,
                 offset: Offset = 0,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[StreamPublic]:
    query = select(Stream).where(Stream.tenant_id == tenant.id)
    if series_id is not None:
        query = query.where(Stream.series_id == series_id)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Stream.id).offset(offset).limit(limit)).all()
    return Page[StreamPublic](data=[to_public(session, cache, s) for s in rows], count=count)


@router.get("/{stream_id}", response_model=StreamPublic,
            summary="A stream: its model, last reading and live accuracy")
def read_stream(stream_id: StreamIdPath, tenant: TenantDep, session: SessionDep,
                cache: ForecastersDep) -> StreamPublic:
    return to_public(session, cache, streams.get_stream(session=session, tenant_id=tenant.id,
                                                        name=stream_id))


def locked_stream(session: SessionDep, tenant_id: int, name: str) -> tuple[Stream, Series]:
    """The stream, locked against concurrent posts for the rest of the transaction, and its series."""
    lock_for_write(session)
    stream = streams.get_stream(session=session, tenant_id=tenant_id, name=name, for_update=True)
    series = session.get(Series, stream.series_id)
    assert series is not None
    return stream, series


@router.post("/{stream_id}/readings", response_model=StreamPosted,
             summary="Append readings: stored in the series and applied to the state at once")
def post_readings(stream_id: StreamIdPath, body: ReadingsIn, tenant: TenantDep, session: SessionDep,
                  cache: ForecastersDep, settings: SettingsDep,
                  horizon: HorizonQuery = 1, level: LevelsQuery = [80, 95],  # noqa: B006
                  rewarm: Annotated[bool, Query(
                      description="Restart from history when a gap is too long to fill")] = False,
                  ) -> StreamPosted:
    check_horizon(horizon, settings)
    stream, series = locked_stream(session, tenant.id, stream_id)
    batch = _batch(body, series.freq)
    applied, forecaster = streams.apply_readings(session=session, cache=cache, settings=settings,
                                                 stream=stream, batch=batch, rewarm=rewarm)
    # A window model forecasts only once it holds a full window: until then the readings are
    # applied and stored all the same, and the answer's forecast is empty.
    forecast: list[dict[str, object]] = []
    if stream.state is not None and stream.model_id is not None:
        seasonal = seasonal_source(session=session, series=series, model_id=stream.model_id,
                                   forecaster=forecaster)
        with contextlib.suppress(Conflict):
            forecast = streams.points(streams.run_forecast(forecaster, stream.state, horizon,
                                                           tuple(level), seasonal))
    session.commit()
    STREAM_READINGS.inc(len(applied.applied))
    return StreamPosted(
        stream_id=stream.name, applied=applied.applied, duplicates=applied.duplicates,
        filled=applied.filled, rewarmed=applied.rewarmed,
        last_ts=None if stream.last_ts is None else datetime.fromtimestamp(stream.last_ts, UTC),
        readings_applied=stream.readings_applied, forecast=forecast)


def _batch(body: ReadingsIn, freq: str) -> ReadingsBatch:
    """Validated readings, by the same rules as an upload: on the grid, none twice, sorted."""
    stamps = pd.DatetimeIndex([r.ts for r in body.readings])
    stamps = stamps.tz_convert("UTC").tz_localize(None) if stamps.tz is not None else stamps
    values = np.array([np.nan if r.value is None else r.value for r in body.readings])

    def report(mask: np.ndarray, message: str) -> list[dict[str, object]]:
        return [field_error(f"readings[{i}].ts", to_iso(int(stamps.asi8[i] // NS_PER_S)),
                            message) for i in np.flatnonzero(mask)[:MAX_REPORTED_ROWS].tolist()]

    return checked_batch(stamps.asi8, values, freq, report)


@router.get("/{stream_id}/forecast", summary="Roll out from the stream's state (unchanged)")
def stream_forecast(stream_id: StreamIdPath, tenant: TenantDep, session: SessionDep,
                    cache: ForecastersDep, settings: SettingsDep, horizon: HorizonQuery = 1,
                    level: LevelsQuery = [80, 95],  # noqa: B006
                    ) -> dict[str, object]:
    check_horizon(horizon, settings)
    stream = streams.get_stream(session=session, tenant_id=tenant.id, name=stream_id)
    forecast = streams.forecast_stream(session=session, cache=cache, stream=stream,
                                       horizon=horizon, levels=tuple(level))
    return {"stream_id": stream.name, "model_id": stream.model_id,
            "points": streams.points(forecast)}


@router.get("/{stream_id}/state", summary="The stream's state arrays, for inspection")
def stream_state(stream_id: StreamIdPath, tenant: TenantDep, session: SessionDep) -> dict[str, object]:
    stream = streams.get_stream(session=session, tenant_id=tenant.id, name=stream_id)
    return {"stream_id": stream.name, "model_id": stream.model_id, "state": stream.state}


@router.post("/{stream_id}/reset", response_model=StreamPublic,
             summary="Re-warm from the stored history (optionally re-pinning a model)")
def reset_stream(stream_id: StreamIdPath, tenant: TenantDep, session: SessionDep,
                 cache: ForecastersDep, settings: SettingsDep,
                 model_id: Annotated[IdQuery, Query(description="Pin this model")] = None,
                 ) -> StreamPublic:
    stream, series = locked_stream(session, tenant.id, stream_id)
    streams.reset_stream(session=session, cache=cache, settings=settings, stream=stream,
                         series=series, model=None if model_id is None else
                         models_db.get_model(session=session, tenant_id=tenant.id,
                                             model_id=model_id))
    session.commit()
    return to_public(session, cache, stream)


@router.delete("/{stream_id}", status_code=204, summary="Delete a stream (its readings stay)")
def delete_stream(stream_id: StreamIdPath, tenant: TenantDep, session: SessionDep) -> Response:
    stream = streams.get_stream(session=session, tenant_id=tenant.id, name=stream_id)
    session.delete(stream)
    session.commit()
    return Response(status_code=204)
