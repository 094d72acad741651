import pytest


@pytest.fixture
def backend() -> str:
    """The dashboard sees only HTTP: the embedded SQLite default is enough."""
    return "sqlite"
