"""Liveness (no database) and readiness (database reachable, schema at head, queue worked)."""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.db.migrations import is_at_head
from app.db.workers import QueueHealth, queue_health

router = APIRouter(tags=["health"])
logger = logging.getLogger("statecast.api")


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check(engine: Engine, stale_after_s: float) -> tuple[bool, QueueHealth]:
    from sqlalchemy.orm import Session

    at_head = is_at_head(engine)
    if not at_head:
        return False, QueueHealth(0, None, 0, None, stale_after_s)
    with Session(engine) as session:
        return True, queue_health(session=session, stale_after_s=stale_after_s)


@router.get("/readyz", summary="The database is reachable and migrated, and queued jobs are worked",
            responses={503: {"description": "Not ready, with the reason"}})
async def readyz(request: Request) -> JSONResponse:
    stale_after_s = request.app.state.settings.worker_stale_after_s
    try:
        at_head, health = await run_in_threadpool(_check, request.app.state.engine, stale_after_s)
    except Exception as exc:  # any driver error means "not ready"
        # The driver's text names hosts, users and paths: it goes to the log, not to anyone
        # who can reach the port.
        logger.warning("not ready: database unreachable", extra={
            "action": "readyz", "error": str(exc).splitlines()[0][:300] if str(exc) else ""})
        return JSONResponse({"status": "unavailable", "reason": "database unreachable"},
                            status_code=503)
    if not at_head:
        return JSONResponse({"status": "unavailable",
                             "reason": "migrations are not at head: run `statecast migrate`"},
                            status_code=503)
    if health.stalled:
        age = health.last_poll_age_s
        return JSONResponse({
            "status": "unavailable",
            "reason": f"{health.queued} job(s) queued and no worker polled the queue in the last "
                      f"{stale_after_s:g} s" + ("" if age is None else f" (last poll {age:.0f} s ago)"),
        }, status_code=503)
    return JSONResponse({"status": "ok"})
