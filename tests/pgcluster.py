"""A PostgreSQL server of a test's own, on a free port, that the test may stop and start.

Outage tests stop the database under a running worker or API; they must never stop the shared
server other tests use. Needs PostgreSQL's server binaries and, when run as root, a `postgres`
user to run them as; the test is skipped otherwise.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.server import free_port

PG_BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14)]


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    return next((d for d in PG_BIN_DIRS if (d / "initdb").exists()), None)


class PostgresCluster:
    """initdb'd into a temporary folder; `stop()` and `start()` simulate an outage."""

    def __init__(self, bin_dir: Path, root: Path, user: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.user = user
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin_dir / tool), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.root / "log"), "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    user = None
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a `postgres` user to run a server as")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="statecast-pg-"))
    if user:
        shutil.chown(root, user)
    try:
        cluster = PostgresCluster(bin_dir, root, user)
        cluster.start()
        try:
            yield cluster
        finally:
            with suppress(subprocess.CalledProcessError):  # already stopped
                cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
