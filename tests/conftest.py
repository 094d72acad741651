"""Fixtures shared by the whole suite: databases on both backends, settings, app, keys."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.migrations import upgrade
from app.db.tenants import create_key
from app.main import create_app
from tests.databases import (
    PostgresClones,
    cloned_database,
    create_postgres_database,
    drop_postgres_database,
    postgres_admin_url,
    with_database,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def user_config_home(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> Path:
    """The command line's config folder, new for each test: none reads or writes the real one.

    Subprocesses inherit it: tests/test_cli.py's cli_env copies this process's environment.
    """
    path = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def pg_admin_url() -> str | None:
    return postgres_admin_url()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str | None) -> Iterator[str | None]:
    if pg_admin_url is None:
        yield None
        return
    name = create_postgres_database(pg_admin_url)
    upgrade(with_database(pg_admin_url, name))
    yield name
    drop_postgres_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def pg_clones(pg_admin_url: str | None, pg_template: str | None
              ) -> Iterator[PostgresClones | None]:
    if pg_admin_url is None or pg_template is None:
        yield None
        return
    clones = PostgresClones(pg_admin_url, pg_template)
    yield clones
    clones.close()  # before pg_template's teardown drops the template


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, pg_admin_url: str | None) -> str:
    if request.param == "postgresql" and pg_admin_url is None:
        pytest.skip("PostgreSQL not configured (set STATECAST_TEST_DATABASE_URL)")
    return str(request.param)


@pytest.fixture
def database_url(backend: str, sqlite_template: str, pg_clones: PostgresClones | None,
                 tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own, on each backend."""
    with cloned_database(backend, sqlite_template, tmp_path, pg_clones) as url:
        yield url


@pytest.fixture
def empty_database_url(backend: str, pg_admin_url: str | None, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema), for migration tests."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    assert pg_admin_url is not None
    name = create_postgres_database(pg_admin_url)
    try:
        yield with_database(pg_admin_url, name)
    finally:
        drop_postgres_database(pg_admin_url, name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No request rate limit: tests fire requests as fast as they can (tests/api/test_quotas.py
    # sets the limits it checks).
    return Settings(database_url=database_url, model_dir=tmp_path / "models",
                    key_file=tmp_path / "api_key", auto_migrate=False, tenant_requests_per_s=0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def make_key(settings: Settings, tenant: str) -> str:
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine), write=True) as session:
        _, key = create_key(session=session, tenant_name=tenant)
    engine.dispose()
    return key


@pytest.fixture
def auth(settings: Settings) -> dict[str, str]:
    """Headers with a key of tenant `alice`."""
    return {"Authorization": f"Bearer {make_key(settings, 'alice')}"}


@pytest.fixture
def other_auth(settings: Settings) -> dict[str, str]:
    """Headers with a key of another tenant, `mallory`."""
    return {"Authorization": f"Bearer {make_key(settings, 'mallory')}"}
