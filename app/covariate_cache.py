"""Covariates kept in each process, so that a profile model's stream post reads no readings.

A stream on a model trained with covariates steps each reading with the covariates around its
time. Reading them from the database, aligning them and computing the profile over them on every
post cost more than the rest of the post. Here, per process and bounded by bytes (LRU):
- a covariate series' readings over a span, keyed by (covariate series id, readings version):
  a read past the span's end reads `READ_AHEAD_S` more, so the next posts find theirs here;
- a model's profile over a span of a series' grid, keyed by the model, the series, its calendar
  and the (covariate, version) pairs it read: a profile at a time reads only the covariates
  around it, so one computed over a span ahead serves every post in it.

The versions come with the post's read of the series' links (`app.db.covariates.read_links`),
and every write of a covariate's readings sets a new one in its own transaction
(`app.db.readings_versions`): a process never reads values older than those stored when its
read of the versions began, whichever process wrote them.
"""

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.ml.profile import ProfileSource

# How far past what a post needs the readings and the profile it computes are read ahead.
READ_AHEAD_S = 2 * 86_400
PROFILE_AHEAD_S = 2 * 86_400
# What each kind of entry may take at most in a process, in bytes of arrays: a year of hourly
# readings is 140 KB, a profile over 4 days of half-hourly steps 1.5 KB.
MAX_READINGS_BYTES = 64 * 1024 * 1024
MAX_PROFILE_BYTES = 16 * 1024 * 1024

Fetch = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _Span:
    """Readings stored from `start_s` to `end_s` inclusive (all of them, not only those kept)."""

    start_s: int
    end_s: int
    ts_s: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.ts_s.nbytes + self.values.nbytes)


@dataclass(frozen=True)
class _Profile:
    """A profile source, and the model it was computed with (a model id is unique only within
    one database; the tests run several in one process)."""

    owner: "weakref.ref[Any]"
    source: ProfileSource

    @property
    def nbytes(self) -> int:
        return int(self.source.path.nbytes)


class _Lru:
    """Entries up to `max_bytes` of arrays, the least recently used dropped first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: Any) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes

    def __len__(self) -> int:
        return len(self._entries)


class CovariateCache:
    """A process's covariate readings and profiles (see the module's docstring)."""

    def __init__(self, max_readings_bytes: int = MAX_READINGS_BYTES,
                 max_profile_bytes: int = MAX_PROFILE_BYTES) -> None:
        self.readings_kept = _Lru(max_readings_bytes)
        self.profiles_kept = _Lru(max_profile_bytes)

    def readings(self, series_id: int, version: int, start_s: int, end_s: int,
                 fetch: Fetch) -> tuple[np.ndarray, np.ndarray]:
        """The covariate's readings in [start_s, end_s] at `version`: from memory when kept,
        else `fetch(start, end)` over the span and `READ_AHEAD_S` past it, then kept."""
        key = (series_id, version)
        span: _Span | None = self.readings_kept.get(key)
        if span is None or start_s < span.start_s or end_s > span.end_s:
            ts_s, values = fetch(start_s, end_s + READ_AHEAD_S)
            span = _Span(start_s, end_s + READ_AHEAD_S, ts_s, values)
            self.readings_kept.put(key, span)
        first, last = np.searchsorted(span.ts_s, [start_s, end_s], side="left")
        last += int(last < len(span.ts_s) and span.ts_s[last] == end_s)
        return span.ts_s[first:last], span.values[first:last]

    def profile(self, key: Hashable, owner: object, start_ns: int,
                end_ns: int) -> ProfileSource | None:
        """The kept profile of `key` computed with `owner` if it covers [start_ns, end_ns]."""
        kept: _Profile | None = self.profiles_kept.get(key)
        if kept is None or kept.owner() is not owner:
            return None
        if kept.source.start_ns > start_ns or kept.source.end_ns < end_ns:
            return None
        return kept.source

    def keep_profile(self, key: Hashable, owner: object, source: ProfileSource) -> None:
        self.profiles_kept.put(key, _Profile(weakref.ref(owner), source))


# This process's: every app, request and thread of it shares one.
PROCESS_CACHE = CovariateCache()
