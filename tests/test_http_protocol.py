"""app.http_protocol subclasses uvicorn's private HttpToolsProtocol: these fail, in a second and
in process, if uvicorn changes the hooks it relies on (tests/test_slow_clients.py checks the
same against a real `statecast serve`, marked slow)."""

import asyncio
import socket
import time
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.http_protocol import GuardedHttpToolsProtocol

HEAD_TIMEOUT_S = 0.3
# Far longer than the head timeout: reaching it means the server never gave up.
CLIENT_PATIENCE_S = 10.0


class QuickGuard(GuardedHttpToolsProtocol):
    """The guarded protocol with a short head timeout, rather than the settings' one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = HEAD_TIMEOUT_S


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def exchange(request: bytes) -> tuple[bytes, float]:
    """What a server with the guarded protocol answers to `request`, and after how long."""
    config = uvicorn.Config(hello, http=QuickGuard, lifespan="off",
                            log_level="warning")
    server = uvicorn.Server(config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection(*sock.getsockname())
            start = time.monotonic()
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), CLIENT_PATIENCE_S)
            elapsed_s = time.monotonic() - start
            writer.close()
            await writer.wait_closed()
        finally:
            server.should_exit = True
            await serving
    return answer, elapsed_s


def test_a_head_that_never_ends_is_cut_off_after_the_timeout() -> None:
    answer, elapsed_s = asyncio.run(exchange(b"GET / HTTP/1.1\r\nHost: x\r\n"))
    assert answer == b"" and HEAD_TIMEOUT_S <= elapsed_s < CLIENT_PATIENCE_S / 2


def test_a_whole_request_is_answered() -> None:
    answer, _ = asyncio.run(exchange(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 200") and b"\r\nhello\r\n" in answer


def test_the_overridden_hooks_are_uvicorns() -> None:
    overridden = {"connection_made", "on_message_begin", "on_headers_complete", "connection_lost"}
    for name in overridden:
        assert name in vars(HttpToolsProtocol), f"uvicorn's HttpToolsProtocol has no {name}"
        assert name in vars(GuardedHttpToolsProtocol)
