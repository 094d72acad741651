"""One training job, run inside its own child process.

TensorFlow is imported here and nowhere near the API: the child's threads and memory go back to
the system when it exits, and a crash or out-of-memory kill ends one job, not the worker.
"""

import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import pool, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.covariate_inputs import aligned_covariates, calendar_of, used_links
from app.db import covariates as covariates_db
from app.db import forecast_models, jobs
from app.db.engine import create_db_engine, create_session_factory, transaction
from app.db.jobs import ClaimedJob, JobStatus
from app.db.readings import fetch_readings
from app.db.tables import ForecastModel, ModelStatus, Series, utcnow
from app.errors import Invalid
from app.logs import configure_logging
from app.model_files import attempt_path, install_attempt, model_path, remove_model_files
from app.observability.metrics import JOBS_FINISHED, TRAINING_SECONDS
from app.timegrid import on_grid, to_index
from app.worker.parent import watch_parent

logger = logging.getLogger("statecast.worker")
# A cancel is noticed within this long; the database is asked no more often than this.
CANCEL_CHECK_INTERVAL_S = 0.5
# Reported before TensorFlow is imported (about 20 s), so a new job never looks stuck.
STARTING_PROGRESS = {"phase": "starting", "epoch": 0}
ORPHAN_EXIT_CODE = 75
# The training process failed outside the training itself (the database, mostly): the worker
# retries the attempt.
RETRY_EXIT_CODE = 1


def is_worse_than_naive(metrics: dict[str, Any]) -> bool:
    """Whether the model loses to the seasonal naive, judged on validation data if recorded."""
    block = metrics.get("validation", metrics).get("full_horizon", {})
    model = block.get("model", {}).get("mase")
    naive = block.get("seasonal_naive", {}).get("mase")
    return model is not None and naive is not None and model > naive


def load_series_data(session: Session, model_id: int,
                     covariates: list[str] | None = None) -> list[Any]:
    """The model's series as regular grids with NaN where a reading is missing, each with its
    calendar and the covariates `covariates` names (None: all the series links) on its grid.

    Raises:
        Invalid: a series no longer has a covariate the spec names.
    """
    from app.ml.data import SeriesData

    result = []
    for series_id in forecast_models.series_ids(session=session, model_id=model_id):
        series = session.get(Series, series_id)
        assert series is not None
        grid, full = on_grid(*fetch_readings(session=session, series_id=series_id), series.freq)
        links = used_links(covariates_db.links_of(session=session, series_id=series_id),
                           covariates, "spec.covariates")
        result.append(SeriesData(
            values=full, timestamps=to_index(grid), freq=series.freq, name=series.name,
            timezone=series.timezone, calendar=calendar_of(series),
            covariates=aligned_covariates(session=session, links=links, grid_s=grid)))
    return result


class CurrentAttempt:
    """`should_stop` for training: True once this attempt is no longer the job's current one
    (cancelled, requeued to a newer attempt, model deleted). The database is asked at most every
    CANCEL_CHECK_INTERVAL_S; while it cannot be reached the last answer stands."""

    def __init__(self, factory: sessionmaker[Session], job: ClaimedJob) -> None:
        self.factory = factory
        self.job = job
        self.checked_at = 0.0
        self.stop = False

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self.checked_at >= CANCEL_CHECK_INTERVAL_S:
            self.checked_at = now
            try:
                with self.factory() as session:
                    self.stop = not jobs.is_current(session=session, job=self.job)
            except DBAPIError:
                pass
        return self.stop


def run_training_job(settings_data: dict[str, Any], job: ClaimedJob) -> None:
    """Entry point of the child process. Nothing escapes it: multiprocessing would print the
    traceback as plain text into the JSON log; it is logged, and the exit status says what to do
    (non-zero: the worker retries the attempt)."""
    settings = Settings(**settings_data)
    configure_logging(settings.log_level, settings.log_format)
    log = {"job_id": job.id, "model_id": job.model_id, "attempt": job.attempt}
    try:
        _run_job(settings, job, log)
    except DBAPIError:
        # The database, not the job: the worker retries the attempt.
        logger.exception("training interrupted by a database error",
                         extra={"action": "job_db_error", **log})
        sys.exit(RETRY_EXIT_CODE)
    except Exception:
        logger.exception("training process failed", extra={"action": "job_crash", **log})
        sys.exit(RETRY_EXIT_CODE)


def _run_job(settings: Settings, job: ClaimedJob, log: dict[str, Any]) -> None:
    engine = create_db_engine(settings.database_url, poolclass=pool.NullPool,
                              lock_timeout_s=settings.database_lock_timeout_s)
    factory = create_session_factory(engine)
    logger.info("training started", extra={"action": "start_job", **log})
    exit_with_worker(log)
    with transaction(factory) as session:
        jobs.report_progress(session=session, job=job, progress=STARTING_PROGRESS)
    try:
        status, error = _train(settings, factory, job)
    except DBAPIError:
        raise
    except Exception as exc:  # a bug, not the data: record it rather than retry it forever
        logger.exception("training failed", extra={"action": "job_error", **log})
        status, error = JobStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
    if status != JobStatus.SUCCEEDED:
        with transaction(factory, write=True) as session:
            jobs.finish(session=session, job=job, status=status, error=error)
    JOBS_FINISHED.labels(str(status)).inc()
    logger.info("training ended", extra={"action": "end_job", "status": str(status), **log})
    engine.dispose()


def exit_with_worker(log: dict[str, Any]) -> None:
    """End this process as soon as the worker that started it is gone.

    The worker holds the job's lease; once it dies the job is requeued and another attempt
    starts, so an orphan would only burn CPU beside it. It exits at once, without touching the
    database: whatever it would record belongs to the next attempt now.
    """
    watch_parent(os.getppid(), lambda: os._exit(ORPHAN_EXIT_CODE),
                 "worker process gone; training abandoned", log)


def _train(settings: Settings, factory: sessionmaker[Session],
           job: ClaimedJob) -> tuple[JobStatus, str | None]:
    from app.ml.artifacts import load_meta, save_artifacts
    from app.ml.data import TrainingDataError
    from app.ml.spec import ModelSpec
    from app.ml.training import EpochProgress, TrainingCancelled, train

    model_id = job.model_id
    if model_id is None:  # only the service's own jobs have none
        return JobStatus.FAILED, "a training job needs a model"
    with transaction(factory) as session:
        model = session.get(ForecastModel, model_id)
        if model is None:
            return JobStatus.CANCELLED, "the model was deleted"
        spec = ModelSpec(**model.spec)
        try:
            series = load_series_data(session, model_id, spec.covariates)
        except Invalid as exc:  # a covariate unlinked since the model was asked for
            return JobStatus.FAILED, exc.detail
    target = model_path(settings.model_dir, model_id)
    staged: Path | None = None
    if not (target / "meta.json").exists():  # else an earlier attempt wrote it all, then died
        history: list[dict[str, float]] = []

        def on_epoch(progress: EpochProgress) -> None:
            history.append({"epoch": progress.epoch, "loss": progress.loss,
                            "val_loss": progress.val_loss})
            try:
                with transaction(factory) as session:
                    jobs.report_progress(session=session, job=job, progress={
                        "phase": "training",
                        "epoch": progress.epoch, "epochs": progress.epochs,
                        "loss": progress.loss, "val_loss": progress.val_loss,
                        "elapsed_s": round(progress.elapsed_s, 3),
                        "eta_s": round(progress.eta_s, 3), "history": history})
            except DBAPIError:  # progress is a courtesy; the next epoch reports again
                logger.warning("progress not recorded", extra={"action": "progress_db_error",
                                                               "job_id": job.id})

        current = CurrentAttempt(factory, job)
        started = time.monotonic()
        try:
            trained = train(spec, series, on_epoch=on_epoch, should_stop=current.should_stop)
        except TrainingDataError as exc:
            return JobStatus.FAILED, str(exc)
        except TrainingCancelled:
            return JobStatus.CANCELLED, None
        TRAINING_SECONDS.labels(spec.cell).observe(time.monotonic() - started)
        staged = attempt_path(settings.model_dir, model_id, job.attempt)
        shutil.rmtree(staged, ignore_errors=True)  # a released attempt's number comes back
        save_artifacts(trained, staged)
    with transaction(factory, write=True) as session:
        # The fence (the job row's lock, or SQLite's write lock) is held from here to the
        # commit: only the current attempt moves its files into place.
        if not jobs.finish(session=session, job=job, status=JobStatus.SUCCEEDED):
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
            if session.get(ForecastModel, model_id) is None:  # deleted while it trained
                remove_model_files(settings.model_dir, [model_id])
            return JobStatus.SUCCEEDED, None  # fenced off: another attempt owns the outcome
        if staged is not None:
            install_attempt(settings.model_dir, model_id, job.attempt)
        meta = load_meta(target)
        session.execute(update(ForecastModel).where(ForecastModel.id == model_id).values(
            status=ModelStatus.READY, metrics=meta.get("metrics"), resolved_spec=meta.get("spec"),
            worse_than_naive=is_worse_than_naive(meta.get("metrics") or {}),
            ready_at=utcnow(), error=None))
    return JobStatus.SUCCEEDED, None
