"""What the benchmarks share: real `statecast` processes on a scratch database, and ports.

Each benchmark measures real servers over loopback, so each needs the same plumbing: a free
port, the installed command, a fresh PostgreSQL database, a server process it waits for.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def statecast_argv() -> list[str]:
    """The installed console script beside this interpreter, else the module behind it."""
    script = Path(sys.executable).parent / "statecast"
    if script.exists():
        return [str(script)]
    found = shutil.which("statecast")
    return [found] if found else [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`, dropped afterwards."""
    name = f"statecast_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(database_url: str, workdir: Path, port: int, **settings: str) -> dict[str, str]:
    """This process's environment without its STATECAST_ variables, for a scratch server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATECAST_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "STATECAST_DATABASE_URL": database_url,
                "STATECAST_HOST": "127.0.0.1", "STATECAST_PORT": str(port),
                "STATECAST_MODEL_DIR": str(workdir / "models"),
                "STATECAST_KEY_FILE": str(workdir / "api_key"), "STATECAST_LOG_LEVEL": "warning",
                # Nothing else competes for the CPU unless a benchmark starts a worker itself.
                "STATECAST_EMBEDDED_WORKERS": "0",
                # A benchmark is one tenant going as fast as it can: no request rate limit.
                "STATECAST_TENANT_REQUESTS_PER_S": "0"})
    env.update(settings)
    return env


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path,
            ready_url: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A process with its output in `log`, waited for until `ready_url` answers 200."""
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while ready_url is not None:
                if process.poll() is not None:
                    raise RuntimeError(f"{argv} exited {process.returncode}:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} not ready after {STARTUP_TIMEOUT_S} s:\n"
                                       f"{log.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(ready_url, timeout=2.0).status_code == 200:
                        break
                time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _stat(pid: int) -> list[str]:
    """Fields 3 on of /proc/PID/stat (after the command's name, which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and every live process below it: a server of several API processes is a tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue  # gone meanwhile
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def rss_bytes(pid: int) -> int:
    """The resident set (VmRSS) of a process and the processes below it now, in bytes."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and the live processes below it used so far."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError):
            fields = _stat(member)
            # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def thread_cpu_ns(pid: int) -> int:
    """CPU nanoseconds the live threads of a process and of those below it ran so far
    (schedstat): exact, where `cpu_s` counts clock ticks (10 ms), too coarse for a few posts."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{member}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total


@contextlib.contextmanager
def serving_process(database_url: str, workdir: Path, **settings: str
                    ) -> Iterator[tuple[str, str, dict[str, str], subprocess.Popen[bytes]]]:
    """Like `serving`, and also the server's process (for its RSS and CPU time)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = server_env(database_url, workdir, port, **settings)
    base_url = f"http://127.0.0.1:{port}"
    with running([*statecast_argv(), "serve"], env, workdir / "serve.log",
                 f"{base_url}/readyz") as process:
        key = subprocess.run([*statecast_argv(), "keys", "create", "--tenant", "bench"],
                             env=env, cwd=workdir, capture_output=True, text=True,
                             check=True).stdout.strip()
        yield base_url, key, env, process


@contextlib.contextmanager
def serving(database_url: str, workdir: Path,
            **settings: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """`statecast serve` on this database: yields its base URL, an API key and its environment."""
    with serving_process(database_url, workdir, **settings) as (base_url, key, env, _):
        yield base_url, key, env
