"""Jobs: watch background work, and cancel it."""

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from app.api.deps import SessionDep, TenantDep
from app.api.params import IdPath, Offset
from app.api.schemas import JobPublic, Page
from app.api.session_release import SessionReleasingRoute
from app.db import jobs as jobs_db
from app.db.engine import lock_for_write
from app.db.jobs import JobStatus
from app.db.tables import Job
from app.errors import Conflict, NotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=SessionReleasingRoute)


def get_job(session: SessionDep, tenant_id: int, job_id: int) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"No job with id {job_id}")
    return job


@router.get("/{job_id}", response_model=JobPublic, summary="A job, with its progress")
def read_job(job_id: IdPath, tenant: TenantDep, session: SessionDep) -> JobPublic:
    return JobPublic.model_validate(get_job(session, tenant.id, job_id))


@router.get("", response_model=Page[JobPublic], summary="List jobs, newest first")
def list_jobs(tenant: TenantDep, session: SessionDep,
              status: Annotated[JobStatus | None, Query()] = None,
              offset: Offset = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[JobPublic]:
    query = select(Job).where(Job.tenant_id == tenant.id)
    if status is not None:
        query = query.where(Job.status == status)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Job.id.desc()).offset(offset).limit(limit)).all()
    return Page[JobPublic](data=[JobPublic.model_validate(r) for r in rows], count=count)


@router.post("/{job_id}/cancel", response_model=JobPublic,
             summary="Cancel: a queued job at once, a running one between batches")
def cancel_job(job_id: IdPath, tenant: TenantDep, session: SessionDep) -> JobPublic:
    lock_for_write(session)
    job = get_job(session, tenant.id, job_id)
    if job.status in jobs_db.FINAL:
        raise Conflict(f"Job {job_id} is already {job.status}")
    jobs_db.request_cancel(session=session, job=job)
    session.commit()
    return JobPublic.model_validate(job)
