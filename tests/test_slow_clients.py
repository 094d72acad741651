"""Slow clients (slowloris) cannot hold `statecast serve`'s connections open forever."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.server import ServerProcess

pytestmark = pytest.mark.slow
# Far longer than the server's timeouts below: reaching it means the server never gave up.
CLIENT_PATIENCE_S = 30.0


@pytest.fixture(params=["1", "2"], ids=["one-process", "two-processes"])
def server(settings: Settings, tmp_path: Path,
           request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # Spawned API processes read the timeouts from their settings, as the one process does.
    process = ServerProcess(settings, tmp_path / "serve.log", STATECAST_HEADER_TIMEOUT_S="1",
                            STATECAST_BODY_TIMEOUT_S="1", STATECAST_API_PROCESSES=request.param)
    yield process
    process.stop()


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(CLIENT_PATIENCE_S)
    return sock


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_request_head_that_never_ends_is_cut_off(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert sock.recv(1024) == b""  # closed by the server, not timed out here
    with connect(server) as idle:  # a connection that sends nothing at all
        assert idle.recv(1024) == b""


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_body_that_stops_arriving_gets_408(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/series HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"name\":")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"STATECAST_BODY_TIMEOUT_S" in answer
