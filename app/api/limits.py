"""A cap on request bodies, enforced while they stream in (413 past the limit), a bound on
the wait for each of their chunks (408 after it: a client trickling its body cannot hold a
connection and a worker thread forever), and the few slots for parsing large uploads."""

import asyncio
import threading

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import problem
from app.config import Settings
from app.errors import Unavailable


class BodyTooLarge(Exception):
    pass


class BodyTimedOut(HTTPException):
    """An HTTPException so that FastAPI's body parsing passes it on (it turns others into 400)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(408, f"No part of the body arrived for {timeout_s:g} s "
                              "(setting STATECAST_BODY_TIMEOUT_S)", headers={"Connection": "close"})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            # A deadline on this task rather than `wait_for`, which (before Python 3.12) wraps
            # the receive in a task of its own: a cost every post paid for a chunk at hand.
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut(self.body_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send)
        except BodyTimedOut as exc:  # read outside FastAPI's handlers (uploads read it raw)
            if not started:
                response = problem(408, "Request timeout", str(exc.detail),
                                   headers={"Connection": "close"})
                await response(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Request body too large",
                           f"The body exceeds the limit of {self.max_body_bytes} bytes "
                           "(setting STATECAST_MAX_UPLOAD_BYTES)")
        await response(scope, receive, send)


class LargeUploadSlots:
    """This request's hold on one of the process's large-upload slots, taken at most once and
    given back at the end of the `with` block; 503 when none is free."""

    def __init__(self, slots: threading.BoundedSemaphore, settings: Settings) -> None:
        self.slots = slots
        self.limit = settings.max_large_uploads
        self.held = False

    def take(self) -> None:
        if self.held:
            return
        if not self.slots.acquire(blocking=False):
            raise Unavailable(f"{self.limit} large uploads are being processed; retry after "
                              "Retry-After (STATECAST_MAX_LARGE_UPLOADS)")
        self.held = True

    def __enter__(self) -> "LargeUploadSlots":
        return self

    def __exit__(self, *_: object) -> None:
        if self.held:
            self.slots.release()
