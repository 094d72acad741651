"""Per-test databases on SQLite and PostgreSQL, cloned from a migrated template.

Every test that touches storage gets a database of its own, so no test sees another's rows,
and server subprocesses can share it. Cloning a migrated template keeps that cheap: a file copy
on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

TEST_DATABASE_URL_ENV = "STATECAST_TEST_DATABASE_URL"


def postgres_admin_url() -> str | None:
    """The PostgreSQL URL the suite may use; skip without one, fail in CI if unreachable."""
    url = os.environ.get(TEST_DATABASE_URL_ENV)
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not url:
        if in_ci:
            pytest.fail(f"{TEST_DATABASE_URL_ENV} must be set in CI")
        return None
    try:
        with psycopg.connect(_libpq(url), connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        if in_ci:
            pytest.fail(f"PostgreSQL at {TEST_DATABASE_URL_ENV} is unreachable: {exc}")
        return None
    return url


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def create_postgres_database(admin_url: str, *, template: str | None = None) -> str:
    name = f"statecast_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_libpq(admin_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"{clause}')
    return name


def drop_postgres_database(admin_url: str, name: str) -> None:
    with psycopg.connect(_libpq(admin_url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresClones:
    """Copies of the migrated PostgreSQL template, made one test ahead and dropped behind it.

    Each test still gets a database of its own that no other test used, but the CREATE DATABASE
    and DROP DATABASE (a few tenths of a second each) run in one background thread while tests
    run, instead of in their setup and teardown. `close()` waits for them and raises the first
    error, so a drop that fails still fails the run.
    """

    def __init__(self, admin_url: str, template: str) -> None:
        self.admin_url = admin_url
        self.template = template
        # One thread: the server sees one CREATE or DROP DATABASE at a time, as before.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-clones")
        self._ahead: Future[str] | None = None
        self._drops: list[Future[None]] = []

    def _create(self) -> Future[str]:
        return self._pool.submit(create_postgres_database, self.admin_url, template=self.template)

    def take(self) -> str:
        """The name of a fresh clone; the next one starts being made."""
        made = self._ahead or self._create()
        self._ahead = self._create()
        return made.result()

    def drop(self, name: str) -> None:
        self._drops.append(self._pool.submit(drop_postgres_database, self.admin_url, name))

    def close(self) -> None:
        if self._ahead is not None:
            self.drop(self._ahead.result())
            self._ahead = None
        self._pool.shutdown(wait=True)
        for dropped in self._drops:
            dropped.result()


@contextmanager
def cloned_database(backend: str, template: str, tmp_path: Path,
                    clones: PostgresClones | None) -> Iterator[str]:
    """A fresh database copied from `template` (a file path), or taken from `clones`."""
    if backend == "sqlite":
        target = tmp_path / "statecast.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    assert clones is not None
    name = clones.take()
    try:
        yield with_database(clones.admin_url, name)
    finally:
        clones.drop(name)
