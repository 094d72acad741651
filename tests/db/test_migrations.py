"""The migration history goes up to head and back down to nothing on both databases; the
readings partitioned on PostgreSQL (0009) keep every row both ways."""

import pytest
from sqlalchemy import Connection, inspect, text

from app.db.engine import create_db_engine
from app.db.migrations import downgrade, is_at_head, upgrade
from app.db.partitions import list_partitions


def tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return names



def _tenant_and_series(connection: Connection, now: str) -> None:
    """Tenant 1 and its hourly series 1, "load": what the rows a migration converts hang on."""
    connection.execute(text(f"INSERT INTO tenants (id, name, created_at) VALUES (1, 't', '{now}')"))
    connection.execute(text("INSERT INTO series (id, tenant_id, name, freq, created_at) "
                            f"VALUES (1, 1, 'load', 'h', '{now}')"))

def test_upgrade_head_then_downgrade_base(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    assert {"tenants", "api_keys", "series", "readings"} <= tables(empty_database_url)
    engine = create_db_engine(empty_database_url)
    assert is_at_head(engine)
    engine.dispose()
    downgrade(empty_database_url, "base")
    assert tables(empty_database_url) == set()
    upgrade(empty_database_url)
    assert "readings" in tables(empty_database_url)


def test_0010_counts_each_tenants_stored_readings(empty_database_url: str) -> None:
    """The readings counter starts from the rows stored before it existed; keys keep working
    as write keys named `default`."""
    from sqlalchemy import text

    upgrade(empty_database_url, "0007")
    engine = create_db_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES "
                                "(1, 'a', CURRENT_TIMESTAMP), (2, 'b', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO api_keys (tenant_id, key_hash, prefix, created_at) "
                                "VALUES (1, 'h', 'sc_', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO series (id, tenant_id, name, freq, timezone, "
                                "created_at) VALUES (1, 1, 's', 'h', 'UTC', CURRENT_TIMESTAMP), "
                                "(2, 1, 't', 'h', 'UTC', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO readings (series_id, ts, value) VALUES "
                                "(1, 0, 1), (1, 3600, NULL), (2, 0, 2)"))
    upgrade(empty_database_url)
    with engine.connect() as connection:
        counts = dict(connection.execute(text(
            "SELECT name, coalesce(sum(readings), 0) FROM tenants LEFT JOIN tenant_readings "
            "ON tenant_readings.tenant_id = tenants.id GROUP BY name")).all())
        key = connection.execute(text("SELECT name, scope, expires_at FROM api_keys")).one()
    assert counts == {"a": 3, "b": 0}
    assert tuple(key) == ("default", "write", None)
    engine.dispose()
    downgrade(empty_database_url, "0007")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_readings_move_into_month_partitions_and_back(empty_database_url: str) -> None:
    url = empty_database_url
    upgrade(url, "0007")
    rows = [(1, 959_817_600 + i * 1800, float(i)) for i in range(3000)]  # 2000-06-01 on, 2 months
    rows.append((2, 1_700_000_000, None))
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO readings VALUES (:s, :t, :v)"),
                           [{"s": s, "t": t, "v": v} for s, t, v in rows])
    upgrade(url)
    with engine.connect() as connection:
        assert relkind(connection) == "p"
        names = {p.name for p in list_partitions(connection)}
        assert {"readings_p200006", "readings_p200007", "readings_p202311"} <= names
        assert count(connection, "readings_default") == 0
        assert count(connection, "readings_p200006") == 1440
        assert stored(connection) == rows
    downgrade(url, "0007")
    with engine.connect() as connection:
        assert relkind(connection) == "r"
        assert stored(connection) == rows
        primary = inspect(connection).get_pk_constraint("readings")
        assert primary["constrained_columns"] == ["series_id", "ts"]
    engine.dispose()


def relkind(connection: Connection) -> str:
    return str(connection.execute(text(
        "SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass")).scalar())


def count(connection: Connection, table: str) -> int:
    return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def stored(connection: Connection) -> list[tuple[int, int, float | None]]:
    return [tuple(r) for r in connection.execute(  # type: ignore[misc]
        text("SELECT series_id, ts, value FROM readings ORDER BY series_id, ts")).all()]


OLD_STATE = {"kind": "stream", "series": "load", "network": [[[0.5, -0.25]]], "last_value": 12.0,
             "last_z": 11.5, "last_timestamp": "2024-01-01T05:00:00", "readings": 3}


def test_stream_states_become_binary_and_back(empty_database_url: str) -> None:
    """0011 stores states in binary: a row written as JSON before it reads after it, and a
    downgrade writes every state back as the JSON it was."""
    import json

    from sqlalchemy import select, text

    from app.db.engine import create_session_factory, transaction
    from app.db.tables import Stream
    from app.ml.stream_state import StreamState, to_json

    upgrade(empty_database_url, "0007")
    engine = create_db_engine(empty_database_url)
    now = "2024-01-01 00:00:00"
    with engine.begin() as connection:
        _tenant_and_series(connection, now)
        connection.execute(text(
            "INSERT INTO streams (tenant_id, name, series_id, pinned, state, readings_applied, "
            f"created_at, updated_at) VALUES (1, 's', 1, false, :state, 3, '{now}', '{now}')"),
            {"state": json.dumps(OLD_STATE)})
    upgrade(empty_database_url)
    with transaction(create_session_factory(engine), write=True) as session:
        stream = session.scalars(select(Stream)).one()
        assert isinstance(stream.state, StreamState) and to_json(stream.state) == OLD_STATE
        stream.state = StreamState(series="load", network=(stream.state.network[0] * 2,),
                                   last_value=1.0, last_z=2.0, last_ns=0, readings=4)
    downgrade(empty_database_url, "0007")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT state FROM streams")).scalar_one()
    engine.dispose()
    assert (stored if isinstance(stored, dict) else json.loads(stored)) == {
        **OLD_STATE, "network": [[[1.0, -0.5]]], "last_value": 1.0, "last_z": 2.0,
        "last_timestamp": "1970-01-01T00:00:00", "readings": 4}


def test_covariates_migration_keeps_series_and_their_streams(empty_database_url: str) -> None:
    """0008 adds the covariate links and calendar columns and takes them away again, on a
    database with rows: the series, and the rows that reference it, survive both ways."""
    upgrade(empty_database_url, "0007")
    engine = create_db_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) "
                                "VALUES (1, 't', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO series (id, tenant_id, name, freq, created_at) "
                                "VALUES (1, 1, 'load', 'h', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO streams (id, tenant_id, name, series_id, pinned, "
                                "readings_applied, created_at, updated_at) VALUES "
                                "(1, 1, 's', 1, false, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    engine.dispose()
    upgrade(empty_database_url, "0008")
    engine = create_db_engine(empty_database_url)
    columns = {c["name"] for c in inspect(engine).get_columns("series")}
    assert {"holidays", "special_days"} <= columns
    with engine.begin() as connection:
        assert connection.execute(text("SELECT holidays, special_days FROM series")).one() == (
            None, [] if engine.dialect.name == "postgresql" else "[]")
        connection.execute(text("INSERT INTO series (id, tenant_id, name, freq, created_at) "
                                "VALUES (2, 1, 'temperature', 'h', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO series_covariates VALUES (1, 'temperature', 2, true)"))
    engine.dispose()
    downgrade(empty_database_url, "0007")
    engine = create_db_engine(empty_database_url)
    assert "series_covariates" not in inspect(engine).get_table_names()
    assert not {"holidays", "special_days"} & {c["name"] for c in
                                               inspect(engine).get_columns("series")}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM series")).scalar_one() == 2
        assert connection.execute(text("SELECT count(*) FROM streams")).scalar_one() == 1
    engine.dispose()


def test_seasonal_fits_become_binary_and_back(empty_database_url: str) -> None:
    """0013 stores seasonal fits as float32 binary: a fit written as JSON before it reads after
    it, a fit written after it reads back exactly, and a downgrade writes every fit back as
    JSON lists."""
    import json

    import numpy as np
    from sqlalchemy import select

    from app.db.engine import create_session_factory, transaction
    from app.db.tables import SeasonalFit
    from app.ml.seasonal import SeasonalCycles

    old = [[0.5, -0.25], [1.0, 2.0, 3.0]]
    upgrade(empty_database_url, "0012")
    engine = create_db_engine(empty_database_url)
    now = "2024-01-01 00:00:00"
    with engine.begin() as connection:
        _tenant_and_series(connection, now)
        connection.execute(text(
            "INSERT INTO forecast_models (id, tenant_id, status, spec, worse_than_naive, "
            f"created_at) VALUES (1, 1, 'ready', '{{}}', false, '{now}')"))
        connection.execute(text("INSERT INTO seasonal_fits (series_id, model_id, boundary_ts, "
                                "cycles, version) VALUES (1, 1, 0, :cycles, 7)"),
                           {"cycles": json.dumps(old)})
    upgrade(empty_database_url)
    new = SeasonalCycles((np.array([0.1, 0.2], np.float32),))
    with transaction(create_session_factory(engine), write=True) as session:
        (fit,) = session.scalars(select(SeasonalFit)).all()
        assert [c.tolist() for c in fit.cycles.cycles] == old
        session.add(SeasonalFit(series_id=1, model_id=1, boundary_ts=86_400, cycles=new,
                                version=8))
    with transaction(create_session_factory(engine)) as session:
        stored = session.get(SeasonalFit, (1, 1, 86_400))
        assert stored is not None and stored.cycles.cycles[0].tobytes() == new.cycles[0].tobytes()
    downgrade(empty_database_url, "0012")
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT boundary_ts, cycles FROM seasonal_fits ORDER BY boundary_ts")).all()
    engine.dispose()
    back = [c if isinstance(c, list) else json.loads(c) for _, c in rows]
    assert back == [old, [np.array([0.1, 0.2], np.float32).astype(float).tolist()]]


def test_0012_versions_every_series_readings_and_takes_it_back(empty_database_url: str) -> None:
    """0012 gives the series already stored version 0 and drops the column again, keeping them
    and the rows that reference them (a rebuilt table would cascade into those on SQLite)."""
    upgrade(empty_database_url, "0011")
    engine = create_db_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name, created_at) "
                                "VALUES (1, 't', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO series (id, tenant_id, name, freq, created_at) "
                                "VALUES (1, 1, 'temperature', 'h', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO streams (id, tenant_id, name, series_id, pinned, "
                                "readings_applied, created_at, updated_at) VALUES "
                                "(1, 1, 's', 1, false, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    engine.dispose()
    upgrade(empty_database_url, "0012")
    engine = create_db_engine(empty_database_url)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT readings_version FROM series")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM streams")).scalar_one() == 1
        connection.execute(text("INSERT INTO series (id, tenant_id, name, freq, created_at) "
                                "VALUES (2, 1, 'load', 'h', CURRENT_TIMESTAMP)"))
        assert connection.execute(text(
            "SELECT readings_version FROM series WHERE id = 2")).scalar_one() == 0
    engine.dispose()
    downgrade(empty_database_url, "0011")
    engine = create_db_engine(empty_database_url)
    assert "readings_version" not in {c["name"] for c in inspect(engine).get_columns("series")}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM series")).scalar_one() == 2
        assert connection.execute(text("SELECT count(*) FROM streams")).scalar_one() == 1
    engine.dispose()
