"""Routes whose common requests skip FastAPI's per-request dependency and parameter solving.

An endpoint marked `@served_lean_by(handler)` keeps its FastAPI signature: it documents the
route (OpenAPI) and serves every request the handler declines. The handler sees each request
first and either answers it, reading the body, the query and the key itself, or returns None
before it has authenticated or changed anything, so FastAPI then runs the route as it always
would (its validation errors are the route's contract). The stream posts use it: FastAPI's
solving of their dependencies, parameters and body cost more than their SQL
(docs/benchmarks.md, "A lean post").

`APIRoute.get_route_handler` is FastAPI's documented hook for custom request handling ("Custom
Request and APIRoute class"); tests/api/test_lean_route.py fails if FastAPI stops calling it
for a route, directly or through an included router.
"""

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response

from app.api.session_release import SessionReleasingRoute

LeanHandler = Callable[[Request], Awaitable[Response | None]]
_HANDLER_ATTRIBUTE = "lean_handler"


def served_lean_by(handler: LeanHandler) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an endpoint so that a `LeanRoute` offers each of its requests to `handler` first."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        setattr(endpoint, _HANDLER_ATTRIBUTE, handler)
        return endpoint

    return mark


class LeanRoute(SessionReleasingRoute):
    """A route class that serves a marked endpoint's requests through its lean handler first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        lean: LeanHandler | None = getattr(self.endpoint, _HANDLER_ATTRIBUTE, None)
        if lean is None:
            return full

        async def handle(request: Request) -> Response:
            response = await lean(request)
            return await full(request) if response is None else response

        return handle
