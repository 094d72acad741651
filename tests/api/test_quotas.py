"""Per-tenant limits answer 429 with Retry-After; the server's upload slots 503."""

import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.quotas import RateLimiter
from app.config import Settings
from app.db.engine import create_db_engine
from app.errors import TooManyRequests
from app.main import create_app
from tests.api.helpers import CSV, assert_problem, create_series, fill_series
from tests.conftest import make_key


def limited(settings: Settings, **limits: object) -> TestClient:
    for name, value in limits.items():
        setattr(settings, name, value)
    return TestClient(create_app(settings))


def retry_after(response: object) -> int:
    return int(response.headers["Retry-After"])  # type: ignore[attr-defined]


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_refills_at_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=4.0, clock=clock)
    for _ in range(4):
        limiter.check(1)
    with pytest.raises(TooManyRequests) as raised:
        limiter.check(1)
    assert raised.value.extra["retry_after_s"] == 0.5
    limiter.check(2)  # another tenant has its own bucket
    clock.now = 0.5
    limiter.check(1)
    with pytest.raises(TooManyRequests):
        limiter.check(1)


def test_requests_past_the_tenant_rate_are_429(settings: Settings, auth: dict[str, str],
                                               other_auth: dict[str, str]) -> None:
    with limited(settings, tenant_requests_per_s=0.01) as client:
        assert client.get("/v1/series", headers=auth).status_code == 200
        response = client.get("/v1/series", headers=auth)
        assert_problem(response, 429)
        assert retry_after(response) >= 1
        assert client.get("/v1/series", headers=other_auth).status_code == 200


def test_active_jobs_past_the_quota_are_429(settings: Settings, auth: dict[str, str],
                                            other_auth: dict[str, str]) -> None:
    with limited(settings, tenant_max_active_jobs=2) as client:
        sid = create_series(client, auth, freq="h")["id"]
        fill_series(client, auth, sid)  # long enough to train: a short series is refused first
        for _ in range(2):
            assert client.post("/v1/models", json={"series_ids": [sid]},
                               headers=auth).status_code == 202
        response = client.post("/v1/models", json={"series_ids": [sid]}, headers=auth)
        assert "STATECAST_TENANT_MAX_ACTIVE_JOBS" in assert_problem(response, 429)["detail"]
        assert retry_after(response) > 0
        other = create_series(client, other_auth, freq="h")["id"]
        fill_series(client, other_auth, other)
        assert client.post("/v1/models", json={"series_ids": [other]},
                           headers=other_auth).status_code == 202


def test_stored_readings_past_the_quota_are_429(settings: Settings,
                                                auth: dict[str, str]) -> None:
    with limited(settings, tenant_max_readings=10) as client:
        sid = create_series(client, auth, freq="h")["id"]

        def rows(start: int, n: int) -> bytes:
            return ("ts,value\n" + "".join(f"2024-01-01 {h:02d}:00,1\n"
                                           for h in range(start, start + n))).encode()

        assert client.post(f"/v1/series/{sid}/readings", content=rows(0, 8),
                           headers={**auth, **CSV}).status_code == 200
        response = client.post(f"/v1/series/{sid}/readings", content=rows(8, 5),
                               headers={**auth, **CSV})
        assert_problem(response, 429)
        assert client.post(f"/v1/series/{sid}/readings", content=rows(8, 2),
                           headers={**auth, **CSV}).status_code == 200


def test_large_uploads_past_the_server_slots_are_503(settings: Settings,
                                                     auth: dict[str, str]) -> None:
    with limited(settings, max_large_uploads=1, large_upload_bytes=10) as client:
        sid = create_series(client, auth, freq="h")["id"]
        body = b"ts,value\n2024-01-01 00:00,1\n"
        slots = client.app.state.large_uploads  # type: ignore[attr-defined]
        slots.acquire()  # another large upload is being parsed
        response = client.post(f"/v1/series/{sid}/readings", content=body,
                               headers={**auth, **CSV})
        slots.release()
        assert_problem(response, 503)
        assert retry_after(response) > 0
        assert client.post(f"/v1/series/{sid}/readings", content=body,
                           headers={**auth, **CSV}).status_code == 200


def test_the_sqlite_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "statecast.db"
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    engine.dispose()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_keys_are_checked_before_the_rate(settings: Settings) -> None:
    with limited(settings, tenant_requests_per_s=0.01) as client:
        bad = {"Authorization": "Bearer sc_nope"}
        for _ in range(3):
            assert_problem(client.get("/v1/series", headers=bad), 401)
        good = {"Authorization": f"Bearer {make_key(settings, 'carol')}"}
        assert client.get("/v1/series", headers=good).status_code == 200
