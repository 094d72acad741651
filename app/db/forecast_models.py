"""Queries on trained models and which one a series forecasts with."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, case, delete, func, select
from sqlalchemy.orm import Session

from app.db import jobs
from app.db.tables import ForecastModel, Job, ModelSeries, ModelStatus, Series, utcnow
from app.errors import Conflict, NotFound


def create_with_job(*, session: Session, tenant_id: int, series: Sequence[Series],
                    spec: dict[str, Any], max_attempts: int) -> tuple[ForecastModel, Job]:
    """A model row and the job that trains it, in the caller's transaction: never one alone."""
    model = ForecastModel(tenant_id=tenant_id, status=ModelStatus.TRAINING, spec=spec,
                          worse_than_naive=False)
    session.add(model)
    session.flush()
    session.add_all([ModelSeries(model_id=model.id, series_id=s.id, position=i)
                     for i, s in enumerate(series)])
    job = jobs.enqueue(session=session, tenant_id=tenant_id, model_id=model.id,
                       max_attempts=max_attempts)
    return model, job


def get_model(*, session: Session, tenant_id: int, model_id: int) -> ForecastModel:
    model = session.scalar(select(ForecastModel).where(ForecastModel.id == model_id,
                                                       ForecastModel.tenant_id == tenant_id))
    if model is None:
        raise NotFound(f"No model with id {model_id}")
    return model


def series_ids(*, session: Session, model_id: int) -> list[int]:
    return list(session.scalars(select(ModelSeries.series_id)
                                .where(ModelSeries.model_id == model_id)
                                .order_by(ModelSeries.position)))


def list_models(*, session: Session, tenant_id: int, series_id: int | None = None,
                offset: int = 0, limit: int = 100) -> tuple[Sequence[ForecastModel], int]:
    query = select(ForecastModel).where(ForecastModel.tenant_id == tenant_id)
    if series_id is not None:
        query = query.where(ForecastModel.id.in_(
            select(ModelSeries.model_id).where(ModelSeries.series_id == series_id)))
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ForecastModel.id.desc()).offset(offset).limit(limit)).all()
    return rows, count


def promote(*, session: Session, model: ForecastModel) -> None:
    if model.status != ModelStatus.READY:
        raise Conflict(f"Model {model.id} is {model.status}; only a ready model can be promoted")
    model.promoted_at = utcnow()
    session.flush()


@dataclass(frozen=True)
class ModelRef:
    """The few columns serving needs, read without loading a model's JSON spec and metrics."""

    id: int
    ready_at: datetime | None
    promoted_at: datetime | None
    worse_than_naive: bool


def default_model_id(series_id: int | ColumnElement[int],
                     among: Collection[int] | None = None) -> ScalarSelect[int]:
    """The id of the model a series forecasts with: the last promoted one, else the newest ready
    one that beats the seasonal naive, else the newest ready one (callers flag that it does not);
    `among` restricts the choice to those models.

    Streams' plain SQL embeds this very query (`stream_rows`), so the fast path and the ORM path
    always agree; `series_id` may be a column of the enclosing statement.
    """
    query = (select(ForecastModel.id)
             .join(ModelSeries, ModelSeries.model_id == ForecastModel.id)
             .where(ModelSeries.series_id == series_id, ForecastModel.status == ModelStatus.READY))
    if among is not None:
        query = query.where(ForecastModel.id.in_(among))
    return (query
            .order_by(case((ForecastModel.promoted_at.is_(None), 1), else_=0),
                      ForecastModel.promoted_at.desc(), ForecastModel.worse_than_naive,
                      ForecastModel.id.desc())
            .limit(1).correlate(None).scalar_subquery())


def default_model_ref(*, session: Session, series_id: int,
                      among: Collection[int] | None = None) -> ModelRef | None:
    """The serving columns of the model the series forecasts with (`default_model_id`), `among`
    those models if given."""
    row = session.execute(
        select(ForecastModel.id, ForecastModel.ready_at, ForecastModel.promoted_at,
               ForecastModel.worse_than_naive)
        .where(ForecastModel.id == default_model_id(series_id, among))).first()
    return None if row is None else ModelRef(*row)


def model_ref(*, session: Session, model_id: int) -> ModelRef | None:
    """The model's serving columns if it is ready, else None."""
    row = session.execute(
        select(ForecastModel.id, ForecastModel.ready_at, ForecastModel.promoted_at,
               ForecastModel.worse_than_naive)
        .where(ForecastModel.id == model_id, ForecastModel.status == ModelStatus.READY)).first()
    return None if row is None else ModelRef(*row)


def default_model(*, session: Session, series_id: int) -> ForecastModel | None:
    ref = default_model_ref(session=session, series_id=series_id)
    return None if ref is None else session.get(ForecastModel, ref.id)


def no_ready_model(*, session: Session, series_id: int) -> Conflict:
    """Why a series that needs its default model has none: one is training (with its job, to
    follow), or none was ever asked for."""
    training = session.execute(
        select(Job.id, Job.model_id).join(ModelSeries, ModelSeries.model_id == Job.model_id)
        .where(ModelSeries.series_id == series_id,
               Job.status.in_([jobs.JobStatus.QUEUED, jobs.JobStatus.RUNNING]))
        .order_by(Job.id.desc())).first()
    if training is None:
        return Conflict("The series has no ready model yet: train one with POST /v1/models")
    job_id, model_id = training
    return Conflict(f"The series has no ready model yet: model {model_id} is training as job "
                    f"{job_id}; follow it at GET /v1/jobs/{job_id} and try again when it has "
                    "succeeded", job_id=job_id, model_id=model_id)


def models_of_series(*, session: Session, series_id: int) -> list[int]:
    return list(session.scalars(select(ModelSeries.model_id)
                                .where(ModelSeries.series_id == series_id)))


def delete_models(*, session: Session, model_ids: Sequence[int]) -> None:
    """Delete models and, by cascade, their jobs; their files are the caller's to remove."""
    if model_ids:
        session.execute(delete(ForecastModel).where(ForecastModel.id.in_(model_ids)))
