"""Per-test databases on SQLite and PostgreSQL, cloned from a migrated template.

Every test that touches storage gets a database of its own, so no test sees another's rows,
and server subprocesses can share it. Cloning a migrated template keeps that cheap: a file copy
on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
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


@contextmanager
def cloned_database(backend: str, template: str, tmp_path: Path,
                    admin_url: str | None) -> Iterator[str]:
    """A fresh database copied from `template` (a file path, or a PostgreSQL database name)."""
    if backend == "sqlite":
        target = tmp_path / "statecast.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    assert admin_url is not None
    name = create_postgres_database(admin_url, template=template)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_postgres_database(admin_url, name)
