"""Many concurrent requests never leave the API with every thread waiting for a connection.

A sync route's answer used to be validated in a second thread-pool hop while its request still
held its pooled connection: with more requests in flight than threads, the answers waiting for a
thread held every connection and the threads waited for one until the pool timed out (503s,
then a stalled API; bench/load.py at 256 clients). Here the pool and the thread pool are
shrunk so the same happens with a few dozen requests in a few seconds.
"""

import anyio
import anyio.to_thread
import httpx

from app.config import Settings
from app.db.engine import create_db_engine, create_session_factory
from app.main import create_app
from tests.conftest import make_key

CONNECTIONS = 2
THREADS = 4
REQUESTS = 40
POOL_TIMEOUT_S = 3


def test_requests_waiting_for_a_thread_hold_no_connection(settings: Settings) -> None:
    app = create_app(settings)
    auth = {"Authorization": f"Bearer {make_key(settings, 'alice')}"}

    async def main() -> list[int]:
        async with app.router.lifespan_context(app):
            small = create_db_engine(settings.database_url, pool_size=CONNECTIONS,
                                     max_overflow=0, pool_timeout=POOL_TIMEOUT_S)
            app.state.engine.dispose()
            app.state.engine, app.state.session_factory = small, create_session_factory(small)
            anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                         headers=auth, timeout=60) as client:
                created = await client.post("/v1/series", json={"name": "m", "freq": "30min"})
                assert created.status_code == 201, created.text
                path = f"/v1/series/{created.json()['id']}"  # a sync route answering a model
                statuses: list[int] = []

                async def get() -> None:
                    statuses.append((await client.get(path)).status_code)

                async with anyio.create_task_group() as group:
                    for _ in range(REQUESTS):
                        group.start_soon(get)
            small.dispose()
            return statuses

    statuses = anyio.run(main)
    assert statuses == [200] * REQUESTS
