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
