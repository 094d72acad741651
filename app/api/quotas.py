"""Per-tenant limits: a request rate (token bucket per API process) and stored amounts."""

import threading
import time
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import reading_counts
from app.db.jobs import JobStatus
from app.db.tables import Job
from app.errors import TooManyRequests

# A tenant that stopped sending is forgotten after this long (its bucket would be full anyway).
IDLE_FORGET_S = 600.0
# A quota that is full stays full until the tenant deletes something: try again in a minute.
QUOTA_RETRY_AFTER_S = 60


class RateLimiter:
    """Token buckets per tenant: `rate_per_s` sustained, bursts of `burst` requests."""

    def __init__(self, rate_per_s: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # tenant -> (tokens, updated)
        self._lock = threading.Lock()

    def check(self, tenant_id: int) -> None:
        """Take a token for the tenant, or raise TooManyRequests saying when one is free."""
        if self.rate_per_s <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, updated = self._buckets.get(tenant_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate_per_s)
            if tokens < 1:
                self._buckets[tenant_id] = (tokens, now)
                wait_s = (1 - tokens) / self.rate_per_s
                raise TooManyRequests(
                    f"More than {self.rate_per_s:g} requests a second from this tenant "
                    "(STATECAST_TENANT_REQUESTS_PER_S)", retry_after_s=round(wait_s, 3))
            self._buckets[tenant_id] = (tokens - 1, now)
            if len(self._buckets) > 10_000:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for tenant_id, (_, updated) in list(self._buckets.items()):
            if now - updated > IDLE_FORGET_S:
                del self._buckets[tenant_id]


def check_active_jobs(*, session: Session, tenant_id: int, limit: int) -> None:
    """Refuse another job when the tenant has `limit` queued or running ones."""
    active = session.scalar(select(func.count()).where(
        Job.tenant_id == tenant_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))) or 0
    if active >= limit:
        raise TooManyRequests(
            f"This tenant already has {active} queued or running jobs, the most allowed "
            "(STATECAST_TENANT_MAX_ACTIVE_JOBS); wait for one to finish or cancel one",
            retry_after_s=QUOTA_RETRY_AFTER_S)


def charge_stored_readings(*, session: Session, tenant_id: int, limit: int) -> None:
    """Charge the tenant for the readings this transaction inserted; refuse (the caller's
    transaction then rolls back) past `limit`. Call last before the commit: it holds the
    tenant's row until then."""
    added = reading_counts.take_inserted(session)
    if added == 0:
        return
    total = reading_counts.add_stored(session=session, tenant_id=tenant_id, added=added)
    if total > limit:
        raise TooManyRequests(
            f"This tenant stores {total - added} readings; {added} more would pass the limit of "
            f"{limit} (STATECAST_TENANT_MAX_READINGS); delete a series to make room",
            retry_after_s=QUOTA_RETRY_AFTER_S)
