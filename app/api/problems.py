"""Every error leaves the API as application/problem+json (RFC 9457), naming field and value."""

import json
import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ServiceError, unreadable_body

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("statecast.api")
# Errors that say "not now" rather than "wrong": the server unreachable or restarting, a lock
# not granted within the lock timeout, a connection pool exhausted.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError)
RETRY_AFTER_S = 2


def problem(status: int, title: str, detail: str, *, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail, **extra}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_body(exc: ServiceError) -> dict[str, Any]:
    """What a problem+json for `exc` says, for answers that report one error among others."""
    body: dict[str, Any] = {"type": "about:blank", "title": exc.title, "status": exc.status,
                            "detail": exc.detail, **exc.extra}
    if exc.errors:
        body["errors"] = exc.errors
    return body


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif exc.status in (429, 503):
        retry_after_s = exc.extra.get("retry_after_s", RETRY_AFTER_S)
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}
    return problem(exc.status, exc.title, exc.detail, errors=exc.errors, headers=headers,
                   **exc.extra)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":  # FastAPI's own JSON parse of the body
            location = error.get("loc", ())
            cause = json.JSONDecodeError((error.get("ctx") or {}).get("error", "invalid"), "",
                                         int(location[-1]) if len(location) > 1 else 0)
            return await _service_error(_, unreadable_body(cause))
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        # An error about the whole body (missing, not an object) is about the field `body`.
        errors.append({"field": ".".join(location) or "body", "value": _jsonable(error.get("input")),
                       "message": error.get("msg", "")})
    fields = ", ".join(f"`{e['field']}` (got {e['value']!r})" for e in errors[:5])
    return problem(422, "Invalid input", f"Invalid value for {fields}", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # FastAPI's "There was an error parsing the body": say what the error was.
        return await _service_error(request, unreadable_body(exc.__cause__))
    headers = getattr(exc, "headers", None)
    allowed = allowed_methods(request) if exc.status_code == 405 else None
    if allowed:
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return problem(exc.status_code, _title(exc.status_code), str(exc.detail), headers=headers)


def allowed_methods(request: Request) -> list[str] | None:
    """The methods the API documents at the request's path; None for a path it does not
    document. Starlette answers a 405 with the methods of the first route whose path matched:
    `OPTIONS /v1/streams/readings` said `Allow: GET`, the methods of `/v1/streams/{stream_id}`,
    where only POST exists (a literal path is never also a stream id: RESERVED_STREAM_IDS)."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    path = request.url.path
    operations = paths.get(path)
    if operations is None:
        templated = [ops for template, ops in paths.items() if "{" in template
                     and re.fullmatch(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)), path)]
        if not templated:
            return None
        operations = {method: op for ops in templated for method, op in ops.items()}
    return sorted(method.upper() for method in operations)


def internal_error() -> JSONResponse:
    """The answer to a bug: nothing about it but that it is logged (with the request id)."""
    # Connection: close tells a keep-alive client the server ends this connection, rather
    # than leaving it to find a reset on its next request.
    return problem(500, "Internal server error",
                   "The server failed; the error is logged with this request's X-Request-ID.",
                   headers={"Connection": "close"})


def unavailable(detail: str, retry_after_s: int = RETRY_AFTER_S) -> JSONResponse:
    return problem(503, "Service unavailable", detail,
                   headers={"Retry-After": str(retry_after_s)})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database is down, restarting, or locked too long: retry later. Anything else a
    driver raises is a bug here (bad input is refused before it reaches the database)."""
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        logger.warning("database unavailable", extra={
            "action": "database_unavailable", "path": request.url.path,
            "error": (str(exc).splitlines() or [""])[0][:300]})
        return unavailable("The database is unavailable or busy; retry after the time in "
                           "Retry-After.")
    logger.error("database error", exc_info=exc, extra={"action": "database_error",
                                                         "path": request.url.path})
    return internal_error()


class CatchAllMiddleware:
    """Answers an unhandled error with a clean 500 instead of letting it reach the server.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then drops the
    keep-alive connection; caught here, the error is logged with the request id and answered
    with `Connection: close`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:  # too late for a clean answer
                raise
            logger.exception("unhandled error", extra={"action": "unhandled_error",
                                                       "path": scope.get("path")})
            await internal_error()(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and inf are not JSON; say what was received all the same
    if isinstance(value, str):
        # A lone surrogate cannot be written as UTF-8: show it escaped rather than fail.
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
