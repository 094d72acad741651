"""The covariate cache on its own: spans read ahead and sliced exactly, a version of its own per
key, profiles only for the model they were computed with, and the bytes it keeps bounded."""

import numpy as np

from app.covariate_cache import READ_AHEAD_S, CovariateCache
from app.ml.profile import ProfileSource

HOUR_S = 3600


class Store:
    """Hourly readings, counting the reads the cache makes."""

    def __init__(self, offset: float = 0.0) -> None:
        self.reads: list[tuple[int, int]] = []
        self.offset = offset

    def fetch(self, start_s: int, end_s: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads.append((start_s, end_s))
        ts_s = np.arange(-(-start_s // HOUR_S) * HOUR_S, end_s + 1, HOUR_S, dtype=np.int64)
        return ts_s, ts_s / HOUR_S + self.offset


def test_a_span_is_read_ahead_once_and_sliced_as_a_read_would_return_it() -> None:
    cache, store = CovariateCache(), Store()
    for start_s, end_s in ((0, 10 * HOUR_S), (HOUR_S, 11 * HOUR_S), (5 * HOUR_S, 5 * HOUR_S),
                           (HOUR_S + 1, 12 * HOUR_S - 1)):
        ts_s, values = cache.readings(7, 1, start_s, end_s, store.fetch)
        expected_ts, expected = Store().fetch(start_s, end_s)
        assert np.array_equal(ts_s, expected_ts) and np.array_equal(values, expected)
    assert store.reads == [(0, 10 * HOUR_S + READ_AHEAD_S)]
    # Past the span, or before it, it reads again.
    cache.readings(7, 1, 0, 10 * HOUR_S + READ_AHEAD_S + HOUR_S, store.fetch)
    cache.readings(7, 1, -HOUR_S, HOUR_S, store.fetch)
    assert len(store.reads) == 3


def test_another_version_is_read_afresh() -> None:
    cache, old, new = CovariateCache(), Store(), Store(offset=100.0)
    cache.readings(7, 1, 0, 10 * HOUR_S, old.fetch)
    _, values = cache.readings(7, 2, 0, 10 * HOUR_S, new.fetch)
    assert values[0] == 100.0 and len(new.reads) == 1


def test_kept_bytes_are_bounded_least_recently_used_first() -> None:
    store = Store()
    one_span = 2 * 8 * (10 + READ_AHEAD_S // HOUR_S + 1)  # int64 times and float64 values
    cache = CovariateCache(max_readings_bytes=2 * one_span)
    for series_id in (1, 2, 1, 3):  # 1 used again: 2 is the least recent when 3 comes
        cache.readings(series_id, 1, 0, 10 * HOUR_S, store.fetch)
    assert len(cache.readings_kept) == 2
    cache.readings(1, 1, 0, 10 * HOUR_S, store.fetch)
    assert len(store.reads) == 3
    cache.readings(2, 1, 0, 10 * HOUR_S, store.fetch)
    assert len(store.reads) == 4


def test_a_profile_serves_only_its_model_and_the_span_it_covers() -> None:
    class Model:
        pass

    cache, model, other = CovariateCache(), Model(), Model()
    source = ProfileSource(0, 10, np.arange(11.0))
    cache.keep_profile("key", model, source)
    assert cache.profile("key", model, 0, 100) is source
    assert cache.profile("key", model, 0, 110) is None
    assert cache.profile("key", other, 0, 100) is None
    assert cache.profile("other", model, 0, 100) is None
