"""The API's route class: a sync route's database session is closed in its thread as it returns.

FastAPI runs a plain `def` route in the thread pool, validates its answer in a second hop to the
thread pool, and exits the route's dependencies (its session, so its pooled connection) only
after that, even those declared with `scope="function"`. With more requests in flight than
threads, answers waiting for their second hop would hold every connection while every thread
waits for one. Here each sync route runs in one hop that ends by closing the sessions it was
given, and its answer is validated on the event loop: a request never holds a connection while
it waits for a thread. FastAPI offers no public hook for this, so the class overrides
`APIRoute.__init__`; tests/api/test_session_release.py fails if FastAPI changes under it.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool


def _closing_sessions(endpoint: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    try:
        return endpoint(**arguments)
    finally:
        # Closing hands the connection back; rows already read stay usable (sessions here do
        # not expire on commit), and a closed session reconnects if touched again.
        for value in arguments.values():
            if isinstance(value, Session):
                value.close()


def releasing_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """`endpoint` as a coroutine that runs it in the thread pool and closes its sessions there."""

    @functools.wraps(endpoint)  # FastAPI reads the parameters through `__wrapped__`
    async def run(**arguments: Any) -> Any:
        return await run_in_threadpool(_closing_sessions, endpoint, arguments)

    return run


class SessionReleasingRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = releasing_sessions(endpoint)
        super().__init__(path, endpoint, **kwargs)
