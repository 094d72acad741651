"""The job queue: a table that is both the queue and the record, with leases.

Workers claim with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL (on SQLite the claiming
transaction holds the database's write lock, which serialises claimers). A claimed job carries a
lease that its worker renews; a job whose lease expired is requeued, or failed after its last
attempt. Every state change after the claim is fenced by the attempt number, so a worker that
lost its lease cannot overwrite what the next attempt did.

Tenants queue training jobs. The service queues its own jobs (no tenant): the workers schedule
them as they poll, each under a `dedupe_key` that makes it one job however many workers schedule
it at once.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from app.db.tables import ForecastModel, Job, ModelStatus, utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    TRAIN = "train"  # a tenant's model
    PARTITIONS = "partitions"  # the readings' partitions ahead, and retention (PostgreSQL)
    SEASONAL_FITS = "seasonal_fits"  # a model's seasonal fits of the coming days, made ahead


FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run a job it claimed."""

    id: int
    model_id: int | None
    tenant_id: int | None
    attempt: int
    max_attempts: int
    kind: JobKind = JobKind.TRAIN
    params: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, job: Job) -> "ClaimedJob":
        return cls(id=job.id, model_id=job.model_id, tenant_id=job.tenant_id,
                   attempt=job.attempts, max_attempts=job.max_attempts, kind=JobKind(job.kind),
                   params=job.params)


def enqueue(*, session: Session, tenant_id: int, model_id: int, max_attempts: int) -> Job:
    job = Job(tenant_id=tenant_id, model_id=model_id, status=JobStatus.QUEUED,
              max_attempts=max_attempts, attempts=0, cancel_requested=False)
    session.add(job)
    session.flush()
    return job


def schedule(*, session: Session, kind: JobKind, dedupe_key: str, max_attempts: int,
             model_id: int | None = None, params: dict[str, Any] | None = None) -> bool:
    """Queue one of the service's own jobs unless `dedupe_key` was queued before; True if new."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    new_id = session.execute(insert(Job).values(
        tenant_id=None, model_id=model_id, kind=kind, params=params, dedupe_key=dedupe_key,
        status=JobStatus.QUEUED, attempts=0, max_attempts=max_attempts, cancel_requested=False,
        created_at=utcnow()).on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Job.id)).scalar()
    return new_id is not None


def claim(*, session: Session, worker_id: str, lease_s: float) -> ClaimedJob | None:
    """Take the next queued job, or None; the caller's transaction must hold the write lock.

    Fair across tenants: the oldest job of the tenant with the fewest running jobs, so a tenant
    that queued fifty jobs does not make another's single job wait behind all of them.
    """
    running = aliased(Job)
    running_of_tenant = (select(func.count()).where(running.tenant_id == Job.tenant_id,
                                                    running.status == JobStatus.RUNNING)
                         .correlate(Job).scalar_subquery())
    job = session.scalar(
        select(Job).where(Job.status == JobStatus.QUEUED)
        .order_by(running_of_tenant, Job.id).limit(1)
        .with_for_update(of=Job, skip_locked=True)
    )
    if job is None:
        return None
    now = utcnow()
    job.status = JobStatus.RUNNING
    job.worker_id = worker_id
    job.attempts += 1
    job.lease_expires_at = now + timedelta(seconds=lease_s)
    job.started_at = job.started_at or now
    session.flush()
    return ClaimedJob.from_row(job)


def _fenced(job: ClaimedJob) -> Any:
    return (Job.id == job.id) & (Job.status == JobStatus.RUNNING) & (Job.attempts == job.attempt)


def renew(*, session: Session, job: ClaimedJob, lease_s: float) -> bool:
    """Extend the lease; False if the job is no longer this attempt's (requeued, cancelled...)."""
    result = session.execute(update(Job).where(_fenced(job)).values(
        lease_expires_at=utcnow() + timedelta(seconds=lease_s)))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def report_progress(*, session: Session, job: ClaimedJob, progress: dict[str, Any]) -> bool:
    result = session.execute(update(Job).where(_fenced(job)).values(progress=progress))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def is_current(*, session: Session, job: ClaimedJob) -> bool:
    """Whether this attempt should go on: still running, still the job's latest attempt, no
    cancel asked, row not gone (model deleted). Fenced on the attempt number, not the status:
    a requeued job's next attempt is `running` too."""
    row = session.execute(select(Job.cancel_requested, Job.status, Job.attempts)
                          .where(Job.id == job.id)).first()
    return (row is not None and not row[0] and row[1] == JobStatus.RUNNING
            and row[2] == job.attempt)


def finish(*, session: Session, job: ClaimedJob, status: JobStatus,
           error: str | None = None) -> bool:
    """Record the attempt's outcome (and its model's); False if the attempt was fenced off."""
    result = session.execute(update(Job).where(_fenced(job)).values(
        status=status, error=error, finished_at=utcnow(), lease_expires_at=None))
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    model_status = {JobStatus.FAILED: ModelStatus.FAILED,
                    JobStatus.CANCELLED: ModelStatus.CANCELLED}.get(status)
    if model_status and job.kind == JobKind.TRAIN:
        session.execute(update(ForecastModel).where(ForecastModel.id == job.model_id)
                        .values(status=model_status, error=error))
    return True


def retry_or_fail(*, session: Session, job: ClaimedJob, reason: str) -> JobStatus:
    """After a crashed attempt: queue it again, or fail it once attempts are used up."""
    if job.attempt < job.max_attempts:
        session.execute(update(Job).where(_fenced(job)).values(
            status=JobStatus.QUEUED, worker_id=None, lease_expires_at=None,
            error=f"attempt {job.attempt} failed: {reason}"))
        return JobStatus.QUEUED
    finish(session=session, job=job, status=JobStatus.FAILED,
           error=f"failed after {job.attempt} attempts; last: {reason}")
    return JobStatus.FAILED


def release(*, session: Session, job: ClaimedJob) -> None:
    """Hand a job back to the queue without spending an attempt (its worker is shutting down)."""
    session.execute(update(Job).where(_fenced(job)).values(
        status=JobStatus.QUEUED, worker_id=None, lease_expires_at=None,
        attempts=Job.attempts - 1))


def requeue_expired(*, session: Session, now: datetime | None = None) -> list[int]:
    """Requeue running jobs whose lease expired (their worker died), or fail them at the limit."""
    now = now or utcnow()
    expired = session.scalars(
        select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
        .with_for_update(skip_locked=True)
    ).all()
    for job in expired:
        reason = f"lease expired (worker {job.worker_id} stopped renewing it)"
        if job.cancel_requested:
            finish(session=session, job=ClaimedJob.from_row(job), status=JobStatus.CANCELLED)
        else:
            retry_or_fail(session=session, job=ClaimedJob.from_row(job), reason=reason)
    return [job.id for job in expired]


def request_cancel(*, session: Session, job: Job) -> None:
    """Cancel a queued job at once; ask a running one to stop between batches."""
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.finished_at = utcnow()
        session.execute(update(ForecastModel).where(ForecastModel.id == job.model_id)
                        .values(status=ModelStatus.CANCELLED))
    elif job.status == JobStatus.RUNNING:
        job.cancel_requested = True
    session.flush()


def queue_depth(*, session: Session) -> int:
    return session.scalar(select(func.count()).where(Job.status == JobStatus.QUEUED)) or 0
