"""The job queue on both databases: claims, leases, fencing, concurrent claimers."""

import threading
from datetime import timedelta

from sqlalchemy import select

from app.config import Settings
from app.db import jobs
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.forecast_models import create_with_job
from app.db.jobs import JobStatus
from app.db.tables import ForecastModel, Job, Series, utcnow
from app.db.tenants import create_key


def enqueue_jobs(settings: Settings, count: int, max_attempts: int = 3) -> list[int]:
    engine = create_db_engine(settings.database_url)
    ids = []
    with transaction(create_session_factory(engine), write=True) as session:
        tenant, _ = create_key(session=session, tenant_name="t")
        series = Series(tenant_id=tenant.id, name="s", freq="h")
        session.add(series)
        session.flush()
        for _ in range(count):
            _, job = create_with_job(session=session, tenant_id=tenant.id, series=[series],
                                     spec={}, max_attempts=max_attempts)
            ids.append(job.id)
    engine.dispose()
    return ids


def test_claim_takes_oldest_and_fences_stale_attempts(settings: Settings) -> None:
    first, second = enqueue_jobs(settings, 2, max_attempts=2)
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    with transaction(factory, write=True) as session:
        claimed = jobs.claim(session=session, worker_id="w1", lease_s=30)
    assert claimed is not None and claimed.id == first and claimed.attempt == 1
    # Its lease runs out: the job is requeued for a second attempt...
    with transaction(factory, write=True) as session:
        assert jobs.requeue_expired(session=session, now=utcnow() + timedelta(seconds=60)) == [first]
    with transaction(factory, write=True) as session:
        again = jobs.claim(session=session, worker_id="w2", lease_s=30)
    assert again is not None and again.id == first and again.attempt == 2
    # ...and the first attempt, come back to life, can no longer change anything.
    with transaction(factory, write=True) as session:
        assert not jobs.renew(session=session, job=claimed, lease_s=30)
        assert not jobs.finish(session=session, job=claimed, status=JobStatus.SUCCEEDED)
    # The last attempt's lease expiring fails the job with the reason, and its model with it.
    with transaction(factory, write=True) as session:
        jobs.requeue_expired(session=session, now=utcnow() + timedelta(seconds=60))
    with transaction(factory) as session:
        job = session.get(Job, first)
        assert job is not None and job.status == JobStatus.FAILED and "lease expired" in (job.error or "")
        model = session.get(ForecastModel, job.model_id)
        assert model is not None and model.status == "failed"
        queued = session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED)).all()
        assert list(queued) == [second]
    engine.dispose()


def test_concurrent_claimers_never_share_a_job(settings: Settings) -> None:
    ids = enqueue_jobs(settings, 30)
    engine = create_db_engine(settings.database_url, pool_size=8)
    factory = create_session_factory(engine)
    claims: dict[str, list[int]] = {}
    start = threading.Barrier(6)
    first_round = threading.Barrier(6)

    def claimer(name: str) -> None:
        mine = claims.setdefault(name, [])
        start.wait()
        while True:
            with transaction(factory, write=True) as session:
                job = jobs.claim(session=session, worker_id=name, lease_s=30)
            if job is None:
                return
            mine.append(job.id)
            if len(mine) == 1:
                # Every claimer holds a job before any takes a second: on SQLite one thread can
                # otherwise win the write lock 30 times running, and nothing would compete.
                first_round.wait(timeout=60)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [job_id for mine in claims.values() for job_id in mine]
    assert sorted(claimed) == ids  # every job once, none twice
    assert all(claims.values())  # all six claimed at once, and none got another's job
    engine.dispose()


def test_claims_are_fair_across_tenants(settings: Settings) -> None:
    """A tenant's backlog does not hold back another tenant's job."""
    busy = enqueue_jobs(settings, 5)  # tenant `t`
    engine = create_db_engine(settings.database_url)
    factory = create_session_factory(engine)
    with transaction(factory, write=True) as session:
        tenant, _ = create_key(session=session, tenant_name="other")
        series = Series(tenant_id=tenant.id, name="s", freq="h")
        session.add(series)
        session.flush()
        _, job = create_with_job(session=session, tenant_id=tenant.id, series=[series], spec={},
                                 max_attempts=3)
        other = job.id
    order = []
    for worker in ("w1", "w2", "w3"):
        with transaction(factory, write=True) as session:
            claimed = jobs.claim(session=session, worker_id=worker, lease_s=30)
            assert claimed is not None
            order.append(claimed.id)
    # The busy tenant's oldest first (nobody runs anything), then the other tenant's single
    # job ahead of the busy tenant's backlog, then the backlog again.
    assert order == [busy[0], other, busy[1]]
    engine.dispose()
