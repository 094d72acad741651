import pytest


@pytest.fixture
def backend() -> str:
    """Metrics and logging do not depend on the database: SQLite is enough."""
    return "sqlite"
