"""The API's route class: a sync route's database session is closed in its thread as it returns.

FastAPI runs a plain `def` route in the thread pool, then validates its answer in the thread
pool again, and closes the route's dependencies (its session, so its pooled connection) only
after that. Under a few hundred concurrent requests the answers waiting for a second thread
held every connection of the pool while every thread waited for one: the API stopped
(bench/load.py, 256 clients). Here each sync route runs in one thread hop that ends by closing
the sessions it was given, so a request never holds a connection while it waits for a thread,
and its answer is validated on the event loop, without a second hop.
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
