"""A real `statecast serve` subprocess on a free port, for tests that go over the network."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class LiveServer:
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def live_server(settings: Settings, log: Path, *, workers: int = 0) -> Iterator[LiveServer]:
    """Run `statecast serve` on `settings`' database (already migrated) until the block ends."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STATECAST_DATABASE_URL": settings.database_url,
           "STATECAST_MODEL_DIR": str(settings.model_dir), "STATECAST_KEY_FILE": str(settings.key_file),
           "STATECAST_AUTO_MIGRATE": "false", "STATECAST_EMBEDDED_WORKERS": str(workers),
           "STATECAST_WORKER_POLL_INTERVAL_S": "0.2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(url, process, log)
            yield LiveServer(url=url, log=log)
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline_s = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline_s:
        if process.poll() is not None:
            raise RuntimeError(f"statecast serve exited with {process.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"statecast serve did not answer within {START_TIMEOUT_S} s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")
