"""Real `statecast serve` processes for tests that need them: restarts, replicas, latency."""

import socket
import subprocess
import time
from pathlib import Path

import httpx

from app.config import Settings
from tests.test_cli import cli_env, statecast_argv

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`statecast serve` on a free port with the test's settings; stop() or kill() it."""

    def __init__(self, settings: Settings, log_path: Path, *, workers: int = 0,
                 **extra_env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = cli_env(**{"STATECAST_DATABASE_URL": settings.database_url,
                         "STATECAST_MODEL_DIR": str(settings.model_dir),
                         "STATECAST_KEY_FILE": str(settings.key_file),
                         "STATECAST_PORT": str(self.port), "STATECAST_AUTO_MIGRATE": "false",
                         "STATECAST_EMBEDDED_WORKERS": str(workers),
                         "STATECAST_WORKER_POLL_INTERVAL_S": "0.2",
                         "STATECAST_LOG_LEVEL": "warning", **extra_env})
        self._log = log_path.open("a")
        self.process = subprocess.Popen([*statecast_argv(), "serve"], env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs, as in a crash."""
        import os
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._log.close()
