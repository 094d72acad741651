"""The API through a PostgreSQL outage: 503 with Retry-After while it is down, then back."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrations import upgrade
from app.main import create_app
from tests.api.helpers import assert_problem
from tests.conftest import make_key
from tests.pgcluster import postgres_cluster

pytestmark = pytest.mark.slow


def test_requests_during_an_outage_are_503_and_later_ones_succeed(tmp_path: Path) -> None:
    with postgres_cluster() as cluster:
        upgrade(cluster.url)
        settings = Settings(database_url=cluster.url, model_dir=tmp_path / "models",
                            key_file=tmp_path / "api_key", auto_migrate=False)
        auth = {"Authorization": f"Bearer {make_key(settings, 'alice')}"}
        with TestClient(create_app(settings)) as client:
            created = client.post("/v1/series", json={"name": "s", "freq": "h"}, headers=auth)
            assert created.status_code == 201
            cluster.stop()
            for response in (client.get("/v1/series", headers=auth),
                             client.post("/v1/series", json={"name": "t", "freq": "h"},
                                         headers=auth)):
                body = assert_problem(response, 503)
                assert int(response.headers["Retry-After"]) > 0
                assert "127.0.0.1" not in body["detail"]
            assert client.get("/readyz").status_code == 503
            cluster.start()
            # The pool's dead connections are noticed (pre-ping) and replaced.
            assert client.get("/v1/series", headers=auth).status_code == 200
            assert client.post("/v1/series", json={"name": "t", "freq": "h"},
                               headers=auth).status_code == 201
            assert client.get("/readyz").status_code == 200
