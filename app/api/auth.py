"""Who a request comes from: its API key checked, cached briefly, held to its scope and expiry.

A key is looked up in the database at most once per KEY_CACHE_TTL_S per process: every request
of a busy stream would otherwise pay a query (and, as a sync call, a thread hop) to
authenticate. That is also the bound on revocation: the process that revokes a key forgets it
at once, every other replica within KEY_CACHE_TTL_S.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.db import tenants
from app.db.engine import transaction
from app.db.tables import utcnow
from app.db.tenants import Caller, KeyScope
from app.errors import Forbidden, Unauthorized, field_error

logger = logging.getLogger("statecast.api")
# How long a key stays trusted in a process after it was read from the database: the longest
# a key revoked (or deleted) elsewhere still authenticates here.
KEY_CACHE_TTL_S = 5.0
# Methods a `read` key may use.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class _Entry:
    caller: Caller
    fresh_until: float


class KeyCache:
    """The keys this process checked lately, by hash; `last_used_at` written in the background
    (a write must never hold up authentication, e.g. behind SQLite's write lock)."""

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._touches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statecast-key-use")

    def cached(self, key_hash: str) -> Caller | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry.fresh_until <= time.monotonic():
            return None
        return entry.caller

    def remember(self, key_hash: str, caller: Caller) -> None:
        with self._lock:
            self._entries[key_hash] = _Entry(caller, time.monotonic() + self.ttl_s)
            if len(self._entries) > 10_000:
                now = time.monotonic()
                self._entries = {h: e for h, e in self._entries.items() if e.fresh_until > now}

    def forget_key(self, key_id: int) -> None:
        """Stop trusting key `key_id` in this process now (it was revoked here)."""
        with self._lock:
            self._entries = {h: e for h, e in self._entries.items()
                             if e.caller.key_id != key_id}

    def note_use(self, factory: sessionmaker[Session], caller: Caller) -> None:
        """Record the key's use, if the last recorded one is a minute old or more."""
        now = utcnow()
        last = caller.last_used_at
        if last is not None and now - last < tenants.LAST_USED_RESOLUTION:
            return
        self._touches.submit(_touch, factory, caller.key_id)

    def close(self) -> None:
        self._touches.shutdown(wait=True)


def _touch(factory: sessionmaker[Session], key_id: int) -> None:
    try:
        with transaction(factory) as session:
            tenants.touch_key(session=session, key_id=key_id, now=utcnow())
    except DBAPIError as exc:  # a busy or absent database: the next lookup tries again
        logger.warning("could not record a key's use", extra={
            "action": "key_use_not_recorded", "key_id": key_id,
            "error": (str(exc).splitlines() or [""])[0][:300]})


def lookup(factory: sessionmaker[Session], key: str) -> Caller | None:
    with factory() as session:
        return tenants.caller_for_key(session=session, key=key)


def check_terms(caller: Caller, method: str) -> None:
    """Refuse an expired key (401) and a read key on a writing method (403)."""
    if caller.expires_at is not None and caller.expires_at <= utcnow():
        raise Unauthorized(f"The API key expired at {caller.expires_at:%Y-%m-%dT%H:%M:%SZ}")
    if caller.scope == KeyScope.READ and method not in READ_METHODS:
        raise Forbidden(f"This key's scope is `read`: it may only read (GET); {method} needs a "
                        "key of scope `write`",
                        errors=[field_error("scope", caller.scope.value, "needs `write`")])
