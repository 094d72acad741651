"""uvicorn's HTTP protocol with a read timeout on each request's head.

uvicorn waits for a request's head as long as bytes trickle in, and its keep-alive timer only
covers idle time between requests: clients that send a header line now and then ("slowloris")
would hold their connections forever. Here each request's head must arrive within
`header_timeout_s` of its first byte (or of the connection opening); the body's chunks are
bounded by the ASGI middleware in app.api.limits. uvicorn has no setting for this (its
`timeout_keep_alive` covers only idle time between requests), so this subclasses its private
`HttpToolsProtocol`; tests/test_http_protocol.py fails if the hooks used here change. uvicorn
takes the class by its import path, which is what lets it reach spawned API processes; each
reads the timeout from its settings.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import get_settings


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Closes a connection whose request head takes longer than `header_timeout_s`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = get_settings().header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

