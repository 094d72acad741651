"""The `statecast` command line: keys, the embedded default's first-start key, migrations."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.cli import DEFAULT_TENANT, bootstrap_key
from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory, is_sqlite, transaction
from app.db.migrations import is_at_head, upgrade
from app.db.tables import ApiKey
from app.db.tenants import tenant_for_key

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI_TIMEOUT_S = 120


def statecast_argv() -> list[str]:
    """The installed console script beside this interpreter, else the module behind it."""
    script = Path(sys.executable).parent / "statecast"
    if script.exists():
        return [str(script)]
    found = shutil.which("statecast")
    return [found] if found else [sys.executable, "-m", "app.cli"]


def cli_env(**settings: str) -> dict[str, str]:
    """This process's environment without its STATECAST_ variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATECAST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return {**env, **settings}


def run_statecast(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `statecast ARGS...` to completion; fail the test, showing its output, unless it exits 0."""
    done = subprocess.run([*statecast_argv(), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode == 0, (
        f"`statecast {' '.join(args)}` exited {done.returncode}\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def test_keys_create_prints_a_working_key_once(settings: Settings, client: TestClient,
                                               tmp_path: Path) -> None:
    env = cli_env(STATECAST_DATABASE_URL=settings.database_url)
    first = run_statecast("keys", "create", "--tenant", "acme", env=env, cwd=tmp_path)
    second = run_statecast("keys", "create", "--tenant", "acme", env=env, cwd=tmp_path)

    keys = [done.stdout.splitlines() for done in (first, second)]
    assert all(len(lines) == 1 and lines[0].startswith("sc_") for lines in keys), keys
    key, other = keys[0][0], keys[1][0]
    assert key != other
    assert "shown only once" in first.stderr and key not in first.stderr
    for k in (key, other):
        response = client.get("/v1/series", headers={"Authorization": f"Bearer {k}"})
        assert response.status_code == 200, response.text
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine)) as session:
        stored = session.execute(select(ApiKey.key_hash, ApiKey.prefix)).all()
        tenant = tenant_for_key(session=session, key=key)
    engine.dispose()
    assert tenant is not None and tenant.name == "acme"
    assert len(stored) == 2
    assert all(key not in (key_hash, prefix) and len(prefix) < len(key)
               for key_hash, prefix in stored)


def test_first_start_on_empty_sqlite_writes_a_private_key_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)  # what `statecast serve` does first, with auto_migrate on
    key_file = tmp_path / "not-yet" / "api_key"
    settings = Settings(database_url=url, key_file=key_file, model_dir=tmp_path / "models")
    old_umask = os.umask(0o022)  # a umask that would leave a plain file world-readable
    try:
        bootstrap_key(settings)
    finally:
        os.umask(old_umask)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key.startswith("sc_")
    assert key in capsys.readouterr().out
    engine = create_db_engine(url)
    with transaction(create_session_factory(engine)) as session:
        tenant = tenant_for_key(session=session, key=key)
    engine.dispose()
    assert tenant is not None and tenant.name == DEFAULT_TENANT

    bootstrap_key(settings)  # a restart keeps the first key and only points at the file
    assert key_file.read_text().strip() == key
    restarted = capsys.readouterr().out
    assert key not in restarted and str(key_file.resolve()) in restarted


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_no_key_file_on_postgresql(settings: Settings) -> None:
    bootstrap_key(settings)  # production creates keys with `statecast keys create`
    assert not settings.key_file.exists()


def test_migrate_on_an_empty_database(empty_database_url: str, tmp_path: Path) -> None:
    if is_sqlite(empty_database_url):
        (tmp_path / "empty.db").touch()  # an existing, zero-byte file, not just a path
    env = cli_env(STATECAST_DATABASE_URL=empty_database_url)
    for _ in range(2):  # a second run finds the schema at head and changes nothing
        done = run_statecast("migrate", env=env, cwd=tmp_path)
        assert "database schema is at head" in done.stdout
    engine = create_db_engine(empty_database_url)
    assert is_at_head(engine)
    engine.dispose()


def test_help_names_every_command() -> None:
    from app.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    description = parser.description or ""
    assert commands and all(name in description for name in commands), description
