"""The migration history goes up to head and back down to nothing on both databases."""

from sqlalchemy import inspect, text

from app.db.engine import create_db_engine
from app.db.migrations import downgrade, is_at_head, upgrade


def tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return names


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
