import pytest


@pytest.fixture
def backend() -> str:
    """The client sees only HTTP: SQLite is enough."""
    return "sqlite"
