"""Server-Sent Events: a job's progress and a stream's readings, pushed as they happen.

Workers and other replicas write the rows these follow, so each open event stream polls its row
(in a thread, so the event loop never blocks) and sends an event when what a client sees changed.
Starlette ends the generator when the client disconnects.
"""

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.deps import ForecastersDep, SessionFactoryDep, TenantDep
from app.api.params import IdPath, StreamIdPath
from app.api.routes.jobs import get_job
from app.api.routes.streams import to_public
from app.api.schemas import JobPublic
from app.api.session_release import SessionReleasingRoute
from app.db.jobs import FINAL
from app.db.readings import fetch_readings
from app.db.tables import Job, Stream
from app.streams import service as streams
from app.streams.model_cache import ForecasterCache
from app.timegrid import to_iso

EVENTS_POLL_INTERVAL_S = 0.5
# Proxies and load balancers drop connections idle for 30-60 s; a comment line keeps them open.
HEARTBEAT_INTERVAL_S = 15.0
# Readings sent for one poll at most: a bulk post of more gets its latest ones only.
MAX_READINGS_PER_POLL = 1000

HEARTBEAT = ": keep-alive\n\n"
# nginx buffers responses unless told not to, which would hold events back.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

router = APIRouter(prefix="/v1", route_class=SessionReleasingRoute)


def sse(event: str, data: dict[str, Any] | str) -> str:
    """One event: its name and a single line of JSON."""
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n"


def _openapi(example: str, payload: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": f"`text/event-stream`; each event's `data` is {payload}.",
                  "content": {"text/event-stream": {"schema": {"type": "string"},
                                                    "example": example}}}}


# ---- jobs ---------------------------------------------------------------------------------

def _read_job(factory: sessionmaker[Session], tenant_id: int, job_id: int) -> JobPublic | None:
    with factory() as session:
        job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
        return None if job is None else JobPublic.model_validate(job)


def _check_job(factory: sessionmaker[Session], tenant_id: int, job_id: int) -> None:
    with factory() as session:
        get_job(session, tenant_id, job_id)  # raises NotFound: a 404 before any stream starts


async def job_events(factory: sessionmaker[Session], tenant_id: int,
                     job_id: int) -> AsyncIterator[str]:
    """`progress` whenever the job's status, progress or cancel request changes, then `done`."""
    sent: tuple[Any, ...] | None = None
    last_write_s = time.monotonic()
    while True:
        job = await run_in_threadpool(_read_job, factory, tenant_id, job_id)
        if job is None:  # deleted with its model: nothing more will happen
            return
        if job.status in FINAL:
            yield sse("done", job.model_dump_json())
            return
        seen = (job.status, job.progress, job.cancel_requested)
        if seen != sent:
            sent = seen
            yield sse("progress", job.model_dump_json())
            last_write_s = time.monotonic()
        elif time.monotonic() - last_write_s >= HEARTBEAT_INTERVAL_S:
            yield HEARTBEAT
            last_write_s = time.monotonic()
        await asyncio.sleep(EVENTS_POLL_INTERVAL_S)


JOB_EXAMPLE = ('event: progress\ndata: {"id":7,"status":"running","progress":{"epoch":3,'
               '"epochs":20,"loss":0.41,"val_loss":0.47,"elapsed_s":6.1,"eta_s":34.5},...}\n\n'
               ": keep-alive\n\n"
               'event: done\ndata: {"id":7,"status":"succeeded",...}\n\n')


@router.get(
    "/jobs/{job_id}/events", tags=["jobs"], response_class=StreamingResponse,
    summary="Follow a job live (Server-Sent Events) until it ends",
    description=(
        "A `text/event-stream`: a `progress` event with the job (as `GET /v1/jobs/{id}` returns "
        "it) at once and again each time its status or progress changes, typically once per "
        "epoch; then one `done` event with the job in its final state, and the stream closes. "
        "Lines starting with `:` are heartbeats (every ~15 s) to ignore. Browsers' "
        "`EventSource` cannot send the `Authorization` header: read the response body with "
        "`fetch` (or use an SSE client that sends headers), e.g. "
        "`curl -N -H 'Authorization: Bearer sc_...' .../v1/jobs/7/events`. Reconnecting is "
        "safe: the first event always carries the current state."),
    responses=_openapi(JOB_EXAMPLE, "the job as JSON (JobPublic)"))
async def read_job_events(job_id: IdPath, tenant: TenantDep,
                          factory: SessionFactoryDep) -> StreamingResponse:
    await run_in_threadpool(_check_job, factory, tenant.id, job_id)
    return StreamingResponse(job_events(factory, tenant.id, job_id),
                             media_type="text/event-stream", headers=SSE_HEADERS)


# ---- streams ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mark:
    """What a poll compares: a change of either means the stream row was written."""

    updated_at: datetime
    readings_applied: int
    last_ts: int | None


def _read_mark(factory: sessionmaker[Session], tenant_id: int, name: str) -> Mark | None:
    with factory() as session:
        row = session.execute(select(Stream.updated_at, Stream.readings_applied, Stream.last_ts)
                              .where(Stream.tenant_id == tenant_id, Stream.name == name)).first()
        return None if row is None else Mark(*row)


def _first_mark(factory: sessionmaker[Session], tenant_id: int, name: str) -> Mark:
    mark = _read_mark(factory, tenant_id, name)
    if mark is None:
        with factory() as session:
            streams.get_stream(session=session, tenant_id=tenant_id, name=name)  # its 404
    assert mark is not None
    return mark


def _new_readings(factory: sessionmaker[Session], cache: ForecasterCache, tenant_id: int,
                  name: str, since: Mark) -> tuple[Mark, list[dict[str, Any]]] | None:
    """The stream's mark now and one event per reading applied after `since`; None if gone."""
    with factory() as session:
        stream = session.scalar(select(Stream).where(Stream.tenant_id == tenant_id,
                                                     Stream.name == name))
        if stream is None:
            return None
        mark = Mark(stream.updated_at, stream.readings_applied, stream.last_ts)
        count = mark.readings_applied - since.readings_applied
        if count <= 0 or mark.last_ts is None:
            return mark, []  # a reset or re-warm, not a reading
        public = to_public(session, cache, stream)
        ts, values = fetch_readings(
            session=session, series_id=stream.series_id, end_s=mark.last_ts,
            start_s=None if since.last_ts is None else since.last_ts + 1,
            limit=min(count, MAX_READINGS_PER_POLL), newest=True)
    applied_before = mark.readings_applied - len(ts)
    events = []
    for i, (t, value) in enumerate(zip(ts.tolist(), values.tolist(), strict=True)):
        last = i == len(ts) - 1
        events.append({
            "stream_id": public.id, "ts": to_iso(t),
            "value": None if math.isnan(value) else value,
            "readings_applied": applied_before + i + 1,
            # Only the post's last reading has a forecast made after it.
            "forecast": public.next_forecast if last else None,
            "accuracy": public.accuracy})
    return mark, events


async def stream_events(factory: sessionmaker[Session], cache: ForecasterCache, tenant_id: int,
                        name: str, start: Mark) -> AsyncIterator[str]:
    """A `reading` event per reading applied from now on; `deleted` and the end if it goes."""
    mark = start
    last_write_s = time.monotonic()
    while True:
        await asyncio.sleep(EVENTS_POLL_INTERVAL_S)
        now = await run_in_threadpool(_read_mark, factory, tenant_id, name)
        if now is not None and now == mark:
            if time.monotonic() - last_write_s >= HEARTBEAT_INTERVAL_S:
                yield HEARTBEAT
                last_write_s = time.monotonic()
            continue
        found = None if now is None else await run_in_threadpool(
            _new_readings, factory, cache, tenant_id, name, mark)
        if found is None:
            yield sse("deleted", {"stream_id": name})
            return
        mark, events = found
        for event in events:
            yield sse("reading", event)
            last_write_s = time.monotonic()


STREAM_EXAMPLE = ('event: reading\ndata: {"stream_id":"meter-7","ts":"2024-03-11T00:00:00Z",'
                  '"value":11.2,"readings_applied":41,"forecast":{"ts":"2024-03-11T00:30:00Z",'
                  '"mean":10.9,"lower_80":10.1,"upper_80":11.7,"lower_95":9.6,"upper_95":12.2},'
                  '"accuracy":{"judged":40,"mae":0.42,"mase":0.61,...}}\n\n'
                  ": keep-alive\n\n")


@router.get(
    "/streams/{stream_id}/events", tags=["streams"], response_class=StreamingResponse,
    summary="Follow a stream live (Server-Sent Events): an event per applied reading",
    description=(
        "A `text/event-stream` with a `reading` event for each reading applied to the stream "
        "after the connection opened (by any client or replica): `ts`, `value` (null if "
        "missing), `readings_applied` counting it, `forecast` (the one-step forecast and "
        "intervals made after it; null on all but the last reading of one post) and "
        "`accuracy` (the live figures of `GET /v1/streams/{id}`). A reset or re-warm sends "
        "nothing. If the stream is deleted a `deleted` event is sent and the stream closes. "
        "Lines starting with `:` are heartbeats (every ~15 s) to ignore. Send the key as "
        "`Authorization: Bearer ...`: read it with `fetch` or `curl -N`, not `EventSource`, "
        "which cannot send headers. Read `GET /v1/streams/{id}` first for the current state."),
    responses=_openapi(STREAM_EXAMPLE, "one applied reading as JSON"))
async def read_stream_events(stream_id: StreamIdPath, tenant: TenantDep, factory: SessionFactoryDep,
                             cache: ForecastersDep) -> StreamingResponse:
    start = await run_in_threadpool(_first_mark, factory, tenant.id, stream_id)
    return StreamingResponse(stream_events(factory, cache, tenant.id, stream_id, start),
                             media_type="text/event-stream", headers=SSE_HEADERS)
