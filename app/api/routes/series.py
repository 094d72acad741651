"""Series: create, list, read, delete; and their readings, uploaded as CSV or JSON."""

import io
from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.deps import SessionDep, SessionFactoryDep, SettingsDep, TenantDep
from app.api.limits import LargeUploadSlots
from app.api.params import IdPath, Offset
from app.api.quotas import charge_stored_readings
from app.api.schemas import (
    CovariateLinkPublic,
    CovariateUploaded,
    Page,
    ReadingsPage,
    SeriesCalendarIn,
    SeriesCreate,
    SeriesDetail,
    SeriesPublic,
    SeriesUpdate,
    UploadResult,
)
from app.api.session_release import SessionReleasingRoute
from app.covariate_uploads import (
    CovariateColumn,
    CovariateTarget,
    covariate_targets,
    forget_after_change,
    parse_covariate_cols,
    split_batches,
    store_covariates,
)
from app.db import covariates as covariates_db
from app.db import forecast_models as models_db
from app.db import readings as readings_db
from app.db import series as series_db
from app.db.engine import lock_for_write, transaction
from app.db.tables import Series, SeriesCovariate
from app.errors import Invalid, ServiceError, field_error
from app.ingest import (
    Ambiguous,
    CsvOptions,
    LocalTimes,
    ReadingsBatch,
    TimestampFormat,
    parse_cost_bytes,
    parse_csv_columns,
    parse_json,
    rows_counted,
    to_batch,
)
from app.model_files import remove_model_files
from app.timegrid import NS_PER_S

router = APIRouter(prefix="/v1/series", tags=["series"], route_class=SessionReleasingRoute)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {
                "type": "object", "required": ["readings"],
                "properties": {"readings": {"type": "array", "items": {
                    "type": "object", "required": ["ts", "value"],
                    "properties": {"ts": {"type": "string", "format": "date-time"},
                                   "value": {"type": ["number", "null"]}}}}}},
                "example": {"readings": [{"ts": "2024-01-01T00:00:00Z", "value": 1.5},
                                         {"ts": "2024-01-01T00:30:00Z", "value": None}]}},
            "text/csv": {"schema": {"type": "string"},
                         "example": "timestamp,value\n2024-01-01 00:00,1.5\n"},
        },
    }
}


class UnsupportedMediaType(ServiceError):
    status = 415
    title = "Unsupported media type"


def _utc(ts_s: int | None) -> datetime | None:
    return None if ts_s is None else datetime.fromtimestamp(ts_s, UTC)


def _to_seconds(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


COVARIATES_DESCRIPTION = """
A series may name other series of yours as its **covariates** (`covariates`: series id, name,
`known_future`), and a **calendar**: `holidays` (a `holidays` package code such as `US`, `GB-ENG`,
`AU-VIC`) and `special_days` (extra days off, each a date and a label).

A covariate series may have another frequency than the series. Its readings are aligned to the
series' grid: a step at a reading's time takes that reading; a step between two readings takes
their linear interpolation, if they are at most the covariate's own step apart (hourly
temperature under half-hourly load: each :30 is the mean of the hours around it); any other step
is missing, never invented, and nothing past the covariate's last reading is extrapolated.

Readings of a known-future covariate past the series' last reading are its forecast. Upload
newer forecasts and, later, the actual values over them with `on_conflict=replace`: each
forecast reads whatever is stored then.
"""


def series_public(series: Series, links: list[SeriesCovariate]) -> SeriesPublic:
    public = SeriesPublic.model_validate(series)
    public.covariates = [CovariateLinkPublic.model_validate(link) for link in links]
    return public


def _links(body: SeriesCalendarIn) -> list[covariates_db.CovariateLink]:
    return [covariates_db.CovariateLink(series_id=c.series_id, name=c.name,
                                        known_future=c.known_future) for c in body.covariates]


def _special_days(body: SeriesCalendarIn) -> list[dict[str, str]]:
    return [{"date": d.date.isoformat(), "label": d.label} for d in body.special_days]


@router.post("", status_code=201, response_model=SeriesPublic, summary="Create a series",
             description=COVARIATES_DESCRIPTION)
def create_series(body: SeriesCreate, tenant: TenantDep, session: SessionDep) -> SeriesPublic:
    series = series_db.create_series(session=session, tenant_id=tenant.id, name=body.name,
                                     freq=body.freq, timezone=body.timezone, unit=body.unit,
                                     description=body.description, holidays=body.holidays,
                                     special_days=_special_days(body))
    covariates_db.replace_links(session=session, series=series, links=_links(body))
    links = covariates_db.links_of(session=session, series_id=series.id)
    session.commit()
    return series_public(series, links)


@router.patch("/{series_id}", response_model=SeriesPublic, summary="Change a series",
              description="Only the fields sent change." + COVARIATES_DESCRIPTION)
def update_series(series_id: IdPath, body: SeriesUpdate, tenant: TenantDep,
                  session: SessionDep) -> SeriesPublic:
    lock_for_write(session)
    series = series_db.get_series(session=session, tenant_id=tenant.id, series_id=series_id,
                                  for_update=True)
    sent = body.model_fields_set
    if "name" in sent:
        series_db.rename_series(session=session, series=series, name=body.name)
    for field in ("unit", "description", "holidays"):
        if field in sent:
            setattr(series, field, getattr(body, field))
    if "special_days" in sent:
        series.special_days = _special_days(body)
    if "covariates" in sent:
        covariates_db.replace_links(session=session, series=series, links=_links(body))
    if sent & {"covariates", "holidays", "special_days"}:
        covariates_db.forget_warmed(session=session, series_id=series.id)
    links = covariates_db.links_of(session=session, series_id=series.id)
    session.flush()
    session.commit()
    return series_public(series, links)


@router.get("", response_model=Page[SeriesPublic], summary="List series")
def list_series(tenant: TenantDep, session: SessionDep,
                offset: Offset = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[SeriesPublic]:
    rows, count = series_db.list_series(session=session, tenant_id=tenant.id, offset=offset,
                                        limit=limit)
    links = covariates_db.links_of_many(session=session, series_ids=[r.id for r in rows])
    return Page[SeriesPublic](data=[series_public(r, links[r.id]) for r in rows], count=count)


@router.get("/{series_id}", response_model=SeriesDetail, summary="A series and its extent")
def get_series(series_id: IdPath, tenant: TenantDep, session: SessionDep) -> SeriesDetail:
    series = series_db.get_series(session=session, tenant_id=tenant.id, series_id=series_id)
    count, first, last = series_db.reading_stats(session=session, series_id=series.id)
    links = covariates_db.links_of(session=session, series_id=series.id)
    return SeriesDetail(**series_public(series, links).model_dump(), readings=count,
                        first_ts=_utc(first), last_ts=_utc(last))


@router.delete("/{series_id}", status_code=204, summary="Delete a series and all under it")
def delete_series(series_id: IdPath, tenant: TenantDep, session: SessionDep,
                  settings: SettingsDep) -> Response:
    lock_for_write(session)
    series = series_db.get_series(session=session, tenant_id=tenant.id, series_id=series_id,
                                  for_update=True)
    covariates_db.check_not_read(session=session, series=series)
    model_ids = models_db.models_of_series(session=session, series_id=series.id)
    models_db.delete_models(session=session, model_ids=model_ids)
    series_db.delete_series(session=session, series=series)
    session.commit()
    remove_model_files(settings.model_dir, model_ids)
    return Response(status_code=204)


UPLOAD_DESCRIPTION = (
    "Every reading must sit on the series' grid; the upload is stored whole or refused whole. "
    "Timestamps with an offset or `Z` are exact instants. On a series of steps shorter than "
    "a day, timestamps without one are local times of the series' `timezone` (UTC by "
    "default), read as pandas' `tz_localize` reads them: a local time the clocks skip is "
    "refused (422 naming the row), and one that occurs twice, where the clocks go back, is "
    "refused unless `ambiguous` says which to store. Daily and longer steps sit at midnight "
    "UTC, so their dates without a time name the day. Readings are stored, and read back, in "
    "UTC.")


@router.post("/{series_id}/readings", response_model=UploadResult, openapi_extra=UPLOAD_BODY,
             summary="Upload readings as JSON or CSV (all or nothing)",
             description=UPLOAD_DESCRIPTION)
async def upload_readings(
    series_id: IdPath, request: Request, tenant: TenantDep, factory: SessionFactoryDep,
    settings: SettingsDep,
    on_conflict: Annotated[Literal["error", "replace"], Query(
        description="What to do with a stored timestamp sent with another value")] = "error",
    ts_col: Annotated[str | None, Query(description="CSV: timestamp column (default first)")
                      ] = None,
    value_col: Annotated[str | None, Query(
        description="CSV: value column (default: the one column beside the timestamps; a file "
        "of more columns must name it)")] = None,
    sep: Annotated[str, Query(min_length=1, max_length=1, description="CSV field separator")
                   ] = ",",
    decimal: Annotated[Literal[".", ","], Query(description="CSV decimal mark")] = ".",
    ts_format: Annotated[str | None, Query(
        min_length=2, pattern="%", description="strftime format of every timestamp, e.g. "
        "%d/%m/%Y %H:%M (default: ISO 8601, else one format inferred for the column)")] = None,
    dayfirst: Annotated[bool | None, Query(
        description="true: 12/08/2000 is 12 August; false: December 8 (default: inferred, "
        "and an ambiguous column is refused)")] = None,
    ambiguous: Annotated[Ambiguous | None, Query(
        description="On a series with a time zone, which moment a local time that occurs twice "
        "(the clocks go back) is: earliest (summer time), latest (winter time) or infer (from "
        "the order of the rows; needs every reading of the repeated hour). Default: refused")
    ] = None,
    covariate_cols: Annotated[str | None, Query(
        max_length=2000, description="CSV: comma-separated columns to store in the series' "
        "covariates, each `column` (the covariate of that name) or `column:name`. Rows past "
        "the series' last value are the covariates' forecast; an empty cell stores nothing.")
    ] = None,
) -> UploadResult:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("application/json", "text/csv", "application/csv"):
        raise UnsupportedMediaType(
            f"Send readings as application/json or text/csv, not {media_type or 'no type'!r}",
            errors=[{"field": "Content-Type", "value": media_type, "message": "unsupported"}])
    columns = parse_covariate_cols(covariate_cols)
    if columns and media_type == "application/json":
        raise Invalid("`covariate_cols` names CSV columns; send the readings as text/csv",
                      errors=[field_error("covariate_cols", covariate_cols, "JSON body")])
    options = CsvOptions(ts_col=ts_col, value_col=value_col, sep=sep, decimal=decimal,
                         max_columns=settings.max_csv_columns,
                         covariate_cols=tuple(c.column for c in columns))
    formats = TimestampFormat(ts_format=ts_format, dayfirst=dayfirst)
    declared = request.headers.get("content-length", "")
    slots = LargeUploadSlots(request.app.state.large_uploads, settings)
    # Each large body costs several times its size while it is parsed: only a few at a time.
    with slots:
        if not declared.isdigit() or int(declared) >= settings.large_upload_bytes:
            slots.take()
        body = await request.body()
        if parse_cost_bytes(body, media_type, sep) >= settings.large_upload_bytes:
            slots.take()
        return await run_in_threadpool(_upload, factory, tenant.id, series_id, media_type, body,
                                       options, formats, ambiguous, on_conflict,
                                       settings.tenant_max_readings, columns)


def _upload(factory: sessionmaker[Session], tenant_id: int, series_id: int, media_type: str,
            body: bytes, options: CsvOptions, formats: TimestampFormat,
            ambiguous: Ambiguous | None, on_conflict: Literal["error", "replace"],
            max_readings: int, columns: tuple[CovariateColumn, ...]) -> UploadResult:
    """Parse and check the body first, outside any transaction: a slow or refused parse holds
    no lock (a wide CSV once held SQLite's write lock for 49 s)."""
    with factory() as session:
        series = series_db.get_series(session=session, tenant_id=tenant_id, series_id=series_id)
        freq, local = series.freq, LocalTimes.of_series(series.timezone, series.freq, ambiguous)
        targets = covariate_targets(session=session, series=series, columns=columns)
        session.commit()  # releases the covariate series' locks until the write below
    batch, covariate_batches = _parsed(media_type, body, options, formats, local, freq, targets)
    with transaction(factory, write=True) as session:
        series = series_db.get_series(session=session, tenant_id=tenant_id, series_id=series_id,
                                      for_update=True)
        targets = covariate_targets(session=session, series=series, columns=columns)
        result = readings_db.store_readings(session=session, series_id=series.id, batch=batch,
                                            on_conflict=on_conflict)
        if result.inserted or result.updated:  # warmed forecast states that saw older data
            forget_after_change(session=session, series_id=series.id,
                                first_changed_ts=result.first_ts)
        stored = store_covariates(session=session, targets=targets, batches=covariate_batches,
                                  on_conflict=on_conflict)
        charge_stored_readings(session=session, tenant_id=tenant_id, limit=max_readings)
    return UploadResult(received=result.received, inserted=result.inserted,
                        updated=result.updated, unchanged=result.unchanged,
                        first_ts=datetime.fromtimestamp(result.first_ts, UTC),
                        last_ts=datetime.fromtimestamp(result.last_ts, UTC),
                        covariates=[_covariate_uploaded(target, done) for target, done in stored])


def _covariate_uploaded(target: CovariateTarget, done: readings_db.StoreResult | None
                        ) -> CovariateUploaded:
    return CovariateUploaded(
        name=target.column.name, series_id=target.series.id,
        received=done.received if done else 0, inserted=done.inserted if done else 0,
        updated=done.updated if done else 0, unchanged=done.unchanged if done else 0)


def _parsed(media_type: str, body: bytes, options: CsvOptions, formats: TimestampFormat,
            local: LocalTimes, freq: str, targets: list[CovariateTarget],
            ) -> tuple[ReadingsBatch, list[ReadingsBatch]]:
    """The series' readings and each covariate column's, checked."""
    with rows_counted():
        if media_type == "application/json":
            return to_batch(*parse_json(body), freq, ts_field="ts", value_field="value",
                            ts_format=formats, local=local), []
        ts_raw, value_raw, covariate_raw = parse_csv_columns(body, options)
        if targets:
            return split_batches(ts_raw, value_raw, covariate_raw, freq, targets,
                                 ts_format=formats, local=local, ts_field=str(ts_raw.name),
                                 value_field=str(value_raw.name))
        return to_batch(ts_raw, value_raw, freq, ts_field=str(ts_raw.name),
                        value_field=str(value_raw.name), ts_format=formats, local=local), []


@router.get("/{series_id}/readings", response_model=ReadingsPage,
            responses={200: {"content": {"text/csv": {}}}},
            summary="Read readings back as JSON, or CSV with `Accept: text/csv`")
def read_readings(
    series_id: IdPath, request: Request, tenant: TenantDep, session: SessionDep,
    start: Annotated[datetime | None, Query(description="First timestamp (UTC if no zone)")
                     ] = None,
    end: Annotated[datetime | None, Query(description="Last timestamp, inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
) -> Response:
    series = series_db.get_series(session=session, tenant_id=tenant.id, series_id=series_id)
    ts, values = readings_db.fetch_readings(session=session, series_id=series.id,
                                            start_s=_to_seconds(start), end_s=_to_seconds(end),
                                            limit=limit)
    stamps = pd.to_datetime(ts * NS_PER_S, utc=True)
    if "text/csv" in request.headers.get("accept", ""):
        buffer = io.StringIO()
        pd.DataFrame({"ts": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": values}).to_csv(
            buffer, index=False)
        return Response(buffer.getvalue(), media_type="text/csv")
    iso = stamps.strftime("%Y-%m-%dT%H:%M:%SZ")
    data = [{"ts": t, "value": None if np.isnan(v) else float(v)}
            for t, v in zip(iso, values.tolist(), strict=True)]
    return JSONResponse({"series_id": series.id, "data": data, "count": len(data)})
