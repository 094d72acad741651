"""Streams: live feeds whose model state the server keeps between requests."""

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.deps import (
    ForecastersDep,
    SeasonalFitsDep,
    Services,
    ServicesDep,
    SessionDep,
    SettingsDep,
    TenantDep,
    bearer,
    get_services,
    get_tenant,
)
from app.api.lean_route import LeanRoute, served_lean_by
from app.api.params import IdQuery, Offset, StreamIdPath
from app.api.plain_posts import (
    MAX_NS,
    MIN_NS,
    BulkReadings,
    PostQuery,
    Readings,
    decode_readings,
    decode_stream_readings,
    is_plain_json,
    is_stream_id,
    plain_query,
    utc_ns,
)
from app.api.prefer import APPLIED, PREFER_HEADER_DESCRIPTION, wants_minimal
from app.api.problems import problem_body
from app.api.quotas import charge_stored_readings
from app.api.responses import json_response
from app.api.routes.forecasts import HorizonQuery, LevelsQuery, check_horizon
from app.api.schemas import (
    Page,
    ReadingIn,
    ReadingsIn,
    StreamCreate,
    StreamPosted,
    StreamPublic,
    StreamReadingIn,
    StreamReadingsIn,
    StreamsPosted,
)
from app.db import forecast_models as models_db
from app.db import series as series_db
from app.db.engine import lock_for_write
from app.db.tables import ForecastModel, ModelStatus, Series, Stream
from app.errors import Conflict, Invalid, field_error
from app.ingest import MAX_REPORTED_ROWS, MAX_TIMESTAMP, MIN_TIMESTAMP
from app.ml.forecaster import DEFAULT_LEVELS
from app.ml.stream_state import to_json
from app.observability.metrics import STREAM_READINGS
from app.streams import accuracy, judging, posting
from app.streams import service as streams
from app.streams.seasonal_fits import FitCache, FitKey, noting_stale_fits, seasonal_source
from app.streams.sources import forecast_covariates, profile_forecast_source
from app.timegrid import to_iso

router = APIRouter(prefix="/v1/streams", tags=["streams"], route_class=LeanRoute)

RewarmQuery = Annotated[bool, Query(
    description="Restart from history when a gap is too long to fill")]
# Set on a post's answer when some fit it read was stale (docs/operations.md).
STALE_FITS_HEADER = "Statecast-Seasonal-Fits-Stale"


def to_public(session: SessionDep, cache: ForecastersDep, stream: Stream) -> StreamPublic:
    scale = period = None
    if stream.model_id is not None:
        model = session.get(ForecastModel, stream.model_id)
        series = session.get(Series, stream.series_id)
        if model is not None and model.status == ModelStatus.READY and series is not None:
            forecaster = cache.get(model.id, model.ready_at)
            scale, period = streams.mase_scale(forecaster, series), forecaster.spec.seasonal_period
    return StreamPublic(
        id=stream.name, series_id=stream.series_id, model_id=stream.model_id,
        pinned=stream.pinned,
        last_ts=None if stream.last_ts is None else datetime.fromtimestamp(stream.last_ts, UTC),
        readings_applied=stream.readings_applied, next_forecast=stream.next_forecast,
        accuracy=accuracy.summary(stream.accuracy, scale, period), created_at=stream.created_at,
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
                cache: ForecastersDep) -> Response:
    return json_response(to_public(session, cache, streams.get_stream(
        session=session, tenant_id=tenant.id, name=stream_id)).model_dump(mode="json"))


def locked_stream(session: SessionDep, tenant_id: int, name: str) -> tuple[Stream, Series]:
    """The stream, locked against concurrent posts for the rest of the transaction, and its series."""
    lock_for_write(session)
    stream = streams.get_stream(session=session, tenant_id=tenant_id, name=name, for_update=True)
    series = session.get(Series, stream.series_id)
    assert series is not None
    return stream, series


def minimal_response(description: str) -> dict[int | str, dict[str, Any]]:
    """The documented `204` of `Prefer: return=minimal`."""
    return {204: {"description": description, "headers": {"Preference-Applied": {
        "description": "`return=minimal`", "schema": {"type": "string"}}}}}


PreferHeader = Annotated[str | None, Header(description=PREFER_HEADER_DESCRIPTION)]


def _in_session(request: Request, work: Callable[..., Response], **arguments: Any) -> Response:
    """`work` given a session of the app's, closed as it returns (in the same thread, as
    `SessionReleasingRoute` closes a route's)."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        return work(session=session, **arguments)


async def lean_post_many_readings(request: Request) -> Response | None:
    """`post_many_readings` for a plain request (`app.api.lean_route`), else None."""
    query = plain_query(request.query_params, frozenset({"rewarm"}))
    if query is None or not is_plain_json(request):
        return None
    readings = decode_stream_readings(await request.body())
    if readings is None:
        return None
    tenant = await get_tenant(request, await bearer(request))
    return await run_in_threadpool(
        _in_session, request, _post_many, services=await get_services(request),
        tenant_id=tenant.id, readings=readings, rewarm=query.rewarm,
        minimal=wants_minimal(request.headers.get("prefer")))


async def lean_post_readings(request: Request) -> Response | None:
    """`post_readings` for a plain request (`app.api.lean_route`), else None."""
    name = request.path_params["stream_id"]
    query = plain_query(request.query_params, frozenset({"horizon", "level", "rewarm"}))
    if query is None or not is_stream_id(name) or not is_plain_json(request):
        return None
    readings = decode_readings(await request.body())
    if readings is None:
        return None
    tenant = await get_tenant(request, await bearer(request))
    return await run_in_threadpool(
        _in_session, request, _post_one, services=await get_services(request),
        tenant_id=tenant.id, name=name, readings=readings, query=query,
        minimal=wants_minimal(request.headers.get("prefer")))


@router.post("/readings", response_model=StreamsPosted, responses=minimal_response(
                 "Every stream's readings applied, answered without a body as "
                 "`Prefer: return=minimal` asked. If a stream is refused, the answer is the "
                 "full `200` that lists it, whatever the preference."),
             summary="Append readings to many streams at once, each applied whole or refused",
             description="Up to 50,000 readings over any of your streams, e.g. one reading from "
                         "each meter of a fleet. Each stream's readings are applied together or "
                         "not at all; a stream refused (unknown, a reading conflicting with a "
                         "stored one, off the series' grid, a gap too long) is listed with the "
                         "reason and does not stop the others. The request is one transaction: "
                         "if it fails as a whole (a 4xx for the request, a 503), nothing is "
                         "applied. Re-sent readings are acknowledged as duplicates, never "
                         "applied twice.")
@served_lean_by(lean_post_many_readings)
def post_many_readings(body: StreamReadingsIn, tenant: TenantDep, session: SessionDep,
                       services: ServicesDep, rewarm: RewarmQuery = False,
                       prefer: PreferHeader = None) -> Response:
    ts_ns, values = _arrays(body.readings)
    readings = BulkReadings(ts_ns=ts_ns, values=values,
                            names=[reading.stream_id for reading in body.readings])
    return _post_many(session=session, services=services, tenant_id=tenant.id,
                      readings=readings, rewarm=rewarm, minimal=wants_minimal(prefer))


def _post_many(*, session: Session, services: Services, tenant_id: int,
               readings: BulkReadings, rewarm: bool, minimal: bool) -> Response:
    by_stream: dict[str, list[int]] = {}
    for i, name in enumerate(readings.names):
        by_stream.setdefault(name, []).append(i)
    sent = []
    for name, positions in by_stream.items():
        at = np.array(positions)
        sent.append(posting.StreamReadings(name=name, ts_ns=readings.ts_ns[at],
                                           values=readings.values[at], positions=at))
    with noting_stale_fits() as stale:
        outcomes = posting.post_readings(session=session, forecasters=services.forecasters,
                                         fits=services.fits, settings=services.settings,
                                         tenant_id=tenant_id, sent=sent, rewarm=rewarm)
    charge_stored_readings(session=session, tenant_id=tenant_id,
                           limit=services.settings.tenant_max_readings)
    session.commit()
    applied = sum(len(o.done.applied) for o in outcomes)
    STREAM_READINGS.inc(applied)
    refused = sum(len(s.positions) for o, s in zip(outcomes, sent, strict=True) if o.error)
    if minimal and not refused:
        return Response(status_code=204, headers={**APPLIED, **stale_header(stale)})
    results = [_result(o) for o in outcomes]
    return json_response({
        "applied": applied, "duplicates": sum(r["duplicates"] for r in results),
        "refused": refused, "streams": results}, headers=stale_header(stale))


@router.post("/{stream_id}/readings", response_model=StreamPosted, responses=minimal_response(
                 "Applied, answered without a body as `Prefer: return=minimal` asked"),
             summary="Append readings: stored in the series and applied to the state at once")
@served_lean_by(lean_post_readings)
def post_readings(stream_id: StreamIdPath, body: ReadingsIn, tenant: TenantDep, session: SessionDep,
                  services: ServicesDep, horizon: HorizonQuery = 1,
                  level: LevelsQuery = list(DEFAULT_LEVELS),  # noqa: B006
                  rewarm: RewarmQuery = False, prefer: PreferHeader = None) -> Response:
    ts_ns, values = _arrays(body.readings)
    return _post_one(session=session, services=services, tenant_id=tenant.id, name=stream_id,
                     readings=Readings(ts_ns=ts_ns, values=values),
                     query=PostQuery(horizon=horizon, levels=tuple(level), rewarm=rewarm),
                     minimal=wants_minimal(prefer))


def _post_one(*, session: Session, services: Services, tenant_id: int, name: str,
              readings: Readings, query: PostQuery, minimal: bool) -> Response:
    check_horizon(query.horizon, services.settings)
    sent = posting.StreamReadings(name=name, ts_ns=readings.ts_ns, values=readings.values,
                                  positions=np.arange(len(readings.ts_ns)))
    with noting_stale_fits() as stale:
        (outcome,) = posting.post_readings(session=session, forecasters=services.forecasters,
                                           fits=services.fits, settings=services.settings,
                                           tenant_id=tenant_id, sent=[sent], rewarm=query.rewarm)
        if outcome.error is not None:
            raise outcome.error
        forecast = None if minimal else _posted_forecast(session, services.fits, outcome,
                                                         query.horizon, query.levels)
    charge_stored_readings(session=session, tenant_id=tenant_id,
                           limit=services.settings.tenant_max_readings)
    session.commit()
    STREAM_READINGS.inc(len(outcome.done.applied))
    if forecast is None:
        return Response(status_code=204, headers={**APPLIED, **stale_header(stale)})
    return json_response({
        "stream_id": outcome.name, "applied": outcome.done.applied,
        "duplicates": outcome.done.duplicates, "filled": outcome.done.filled,
        "rewarmed": outcome.done.rewarmed,
        "last_ts": None if outcome.last_ts is None else to_iso(outcome.last_ts),
        "readings_applied": outcome.readings_applied, "forecast": forecast},
        headers=stale_header(stale))


def stale_header(stale: list[FitKey]) -> dict[str, str]:
    """How many of the post's (series, day) seasonal fits were read stale: the day's fit was not
    made yet and the newest stored one stood in (the header is absent when none was)."""
    return {STALE_FITS_HEADER: str(len(set(stale)))} if stale else {}


def _arrays(readings: Sequence[ReadingIn | StreamReadingIn]) -> tuple[np.ndarray, np.ndarray]:
    """The readings' times as naive-UTC int64 nanoseconds (an aware time is converted) and their
    values (NaN if missing), once every time is within the range readings can be dated in.

    One pass for all: a bulk post's readings skip pydantic's per-reading range validator."""
    ts_ns = np.array([utc_ns(r.ts) for r in readings], dtype=object)  # Python ints: no overflow
    out_of_range = (ts_ns < MIN_NS) | (ts_ns > MAX_NS)
    if out_of_range.any():
        raise Invalid("Readings can be dated between "
                      f"{MIN_TIMESTAMP:%Y-%m-%d} and {MAX_TIMESTAMP:%Y-%m-%d}", errors=[
                          field_error(f"readings[{i}].ts", readings[i].ts.isoformat(),
                                      "out of range") for i in
                          np.flatnonzero(out_of_range)[:MAX_REPORTED_ROWS].tolist()])
    values = np.array([np.nan if r.value is None else r.value for r in readings])
    return ts_ns.astype(np.int64), values


def _result(outcome: posting.Outcome) -> dict[str, Any]:
    error = outcome.error
    return {
        "stream_id": outcome.name, "status": "refused" if error else "applied",
        "applied": len(outcome.done.applied), "duplicates": len(outcome.done.duplicates),
        "filled": len(outcome.done.filled), "rewarmed": outcome.done.rewarmed,
        "last_ts": None if outcome.last_ts is None else to_iso(outcome.last_ts),
        "next_forecast": outcome.next_forecast,
        "error": None if error is None else problem_body(error)}


def _posted_forecast(session: Session, fits: FitCache, outcome: posting.Outcome, horizon: int,
                     levels: tuple[int, ...]) -> list[dict[str, Any]]:
    """The forecast answered with a post: the stored next step if that is what was asked."""
    forecaster = outcome.forecaster
    if outcome.state is None or outcome.model_id is None or forecaster is None:
        return []
    point = outcome.next_forecast
    if horizon == 1 and point is not None and all(f"lower_{lv}" in point for lv in levels):
        return [{"ts": point["ts"], "mean": point["mean"],
                 **{f"{side}_{lv}": point[f"{side}_{lv}"] for lv in levels
                    for side in ("lower", "upper")}}]
    series = session.get(Series, outcome.series_id)
    assert series is not None
    seasonal = profile_forecast_source(
        session=session, series=series, forecaster=forecaster, model_id=outcome.model_id,
        state=outcome.state, horizon=horizon) if forecaster.uses_profile else seasonal_source(
        session=session, series=series, model_id=outcome.model_id, forecaster=forecaster,
        cache=fits, stale_ok=True)
    # A window model forecasts only once it holds a full window: until then the readings are
    # applied and stored all the same, and the answer's forecast is empty.
    track = forecast_covariates(session=session, series=series, forecaster=forecaster,
                                model_id=outcome.model_id, state=outcome.state, horizon=horizon)
    with contextlib.suppress(Conflict):
        return judging.points(streams.run_forecast(forecaster, outcome.state, horizon, levels,
                                                   seasonal, track))
    return []


# The stream reads answer with a `Response` written by orjson: polled by dashboards, they skip
# FastAPI's validation of an answer built from values the service already checked.
@router.get("/{stream_id}/forecast", response_model=dict[str, Any],
            summary="Roll out from the stream's state (unchanged)")
def stream_forecast(stream_id: StreamIdPath, tenant: TenantDep, session: SessionDep,
                    cache: ForecastersDep, fits: SeasonalFitsDep, settings: SettingsDep,
                    horizon: HorizonQuery = 1,
                    level: LevelsQuery = list(DEFAULT_LEVELS),  # noqa: B006
                    ) -> Response:
    check_horizon(horizon, settings)
    stream, forecast = streams.forecast_stream(session=session, cache=cache, fits=fits,
                                               tenant_id=tenant.id, name=stream_id,
                                               horizon=horizon, levels=tuple(level))
    return json_response({"stream_id": stream.name, "model_id": stream.model_id,
                          "points": judging.points(forecast)})


@router.get("/{stream_id}/state", response_model=dict[str, Any],
            summary="The stream's state arrays, for inspection")
def stream_state(stream_id: StreamIdPath, tenant: TenantDep, session: SessionDep) -> Response:
    stream = streams.get_stream(session=session, tenant_id=tenant.id, name=stream_id)
    return json_response({"stream_id": stream.name, "model_id": stream.model_id,
                          "state": None if stream.state is None else to_json(stream.state)})


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
    lock_for_write(session)
    stream = streams.get_stream(session=session, tenant_id=tenant.id, name=stream_id)
    session.delete(stream)
    session.commit()
    return Response(status_code=204)
