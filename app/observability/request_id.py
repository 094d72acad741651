"""ASGI middleware: give each request an id, answer it in `X-Request-ID`, log one access line."""

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.context import (
    REQUEST_ID_HEADER,
    accept_or_new_request_id,
    install_request_id_filter,
    request_id_var,
)
from app.observability.route_labels import route_template

access_logger = logging.getLogger("statecast.access")
# Probes that orchestrators send every few seconds: logged at debug, so info stays readable.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestIdMiddleware:
    """Sets the request id for everything the request runs, and logs its outcome once.

    The id comes from the client's `X-Request-ID` when it is a plain token, so a caller can follow
    one request through its own logs and ours; otherwise a random one is made.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The middleware stack is built at the first request, after logging is configured.
        install_request_id_filter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_or_new_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        started_s = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_ms = round(1000 * (time.perf_counter() - started_s), 2)
            level = logging.DEBUG if scope["path"] in PROBE_PATHS and status < 400 else logging.INFO
            access_logger.log(
                level, "%s %s %s", scope["method"], scope["path"], status,
                extra={"action": "http_request", "method": scope["method"],
                       "path": scope["path"], "route": route_template(scope), "status": status,
                       "duration_ms": duration_ms})
            request_id_var.reset(token)
