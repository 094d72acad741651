"""Worker heartbeats and the queue's health, read by /readyz and /metrics.

Workers run in processes of their own (or on other hosts), so the API learns that they are alive
only through the database: each worker stamps its row every time it polls the queue.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.db.jobs import JobStatus
from app.db.tables import Job, WorkerBeat, utcnow

# Rows of workers that stopped polling this long ago are dropped (a crashed worker never says
# goodbye); liveness only ever looks at the last few poll intervals.
FORGET_AFTER_S = 24 * 3600.0
# How often a worker prunes them: often enough that the table stays small, rarely enough that
# the poll loop does not pay a DELETE every round.
FORGET_EVERY_S = 600.0


def heartbeat(*, session: Session, worker_id: str, now: datetime | None = None) -> None:
    """Record that `worker_id` polled the queue now."""
    now = now or utcnow()
    result = session.execute(update(WorkerBeat).where(WorkerBeat.id == worker_id)
                             .values(last_poll_at=now))
    if not result.rowcount:  # type: ignore[attr-defined]
        session.add(WorkerBeat(id=worker_id, started_at=now, last_poll_at=now))
        session.flush()


def forget(*, session: Session, worker_id: str) -> None:
    """A worker that stops cleanly removes its row."""
    session.execute(delete(WorkerBeat).where(WorkerBeat.id == worker_id))


@dataclass(frozen=True)
class QueueHealth:
    """Whether the queue is being worked: what /readyz judges and /metrics shows."""

    queued: int
    oldest_queued_age_s: float | None
    workers_alive: int
    last_poll_age_s: float | None
    stale_after_s: float

    @property
    def stalled(self) -> bool:
        """Jobs wait and no worker has polled within `stale_after_s`."""
        return self.queued > 0 and self.workers_alive == 0


def queue_health(*, session: Session, stale_after_s: float,
                 now: datetime | None = None) -> QueueHealth:
    now = now or utcnow()
    queued, oldest = session.execute(
        select(func.count(), func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED)).one()
    beats = list(session.scalars(select(WorkerBeat.last_poll_at)))
    ages = [(now - _aware(beat)).total_seconds() for beat in beats]
    return QueueHealth(
        queued=int(queued),
        oldest_queued_age_s=(now - _aware(oldest)).total_seconds() if oldest is not None else None,
        workers_alive=sum(1 for age in ages if age <= stale_after_s),
        last_poll_age_s=min(ages) if ages else None,
        stale_after_s=stale_after_s,
    )


def forget_stale(*, session: Session, now: datetime | None = None) -> int:
    """Drop the rows of workers that have not polled for FORGET_AFTER_S; how many went."""
    cutoff = (now or utcnow()) - timedelta(seconds=FORGET_AFTER_S)
    result = session.execute(delete(WorkerBeat).where(WorkerBeat.last_poll_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _aware(value: datetime) -> datetime:
    # Aggregates (min) bypass the column type on SQLite and come back naive; they are UTC.
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
