"""The migration history goes up to head and back down to nothing on both databases."""

from sqlalchemy import inspect

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
        connection.execute(text(f"INSERT INTO tenants (id, name, created_at) VALUES (1, 't', '{now}')"))
        connection.execute(text("INSERT INTO series (id, tenant_id, name, freq, created_at) "
                                f"VALUES (1, 1, 'load', 'h', '{now}')"))
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
