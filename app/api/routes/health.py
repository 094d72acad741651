"""Liveness (no database) and readiness (database reachable, schema at head)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.db.migrations import is_at_head

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated",
            responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    try:
        at_head = await run_in_threadpool(is_at_head, engine)
    except Exception as exc:  # any driver error means "not ready", with the reason
        return JSONResponse({"status": "unavailable", "reason": f"database: {exc}"[:500]},
                            status_code=503)
    if not at_head:
        return JSONResponse({"status": "unavailable",
                             "reason": "migrations are not at head: run `statecast migrate`"},
                            status_code=503)
    return JSONResponse({"status": "ok"})
