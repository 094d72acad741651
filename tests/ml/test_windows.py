from __future__ import annotations

import numpy as np

from app.ml.data import Split
from app.ml.windows import stateful_batch_starts, stateful_batches, window_ends

SPLIT = Split(n=100, val_start=60, test_start=80)


def test_window_ends_keep_targets_in_their_part_and_inside_segments() -> None:
    segs = [(0, 30), (35, 100)]
    train = window_ends(segs, SPLIT, "train", window=8, horizon=3)
    assert train.min() == 7 and train.max() + 3 < 60
    assert not np.any((train > 26) & (train < 42))  # no window or target crosses the gap
    val = window_ends(segs, SPLIT, "validation", window=8, horizon=3)
    assert val.min() + 1 == 60 and val.max() + 3 == 79
    test = window_ends(segs, SPLIT, "test", window=8, horizon=3, every=5)
    np.testing.assert_array_equal(test, [79, 84, 89, 94])


def test_stateful_batches_continue_every_lane_where_the_last_batch_stopped() -> None:
    starts = stateful_batch_starts(n_steps=103, batch_size=4, chunk=5)
    assert starts.shape == (5, 4)  # 103 // 20 batches; the 3-step tail is dropped
    np.testing.assert_array_equal(starts[1:] - starts[:-1], 5)  # contiguous in time
    np.testing.assert_array_equal(starts[0], [0, 25, 50, 75])  # disjoint lanes
    covered = np.sort((starts.reshape(-1)[:, None] + np.arange(5)).reshape(-1))
    np.testing.assert_array_equal(covered, np.arange(100))  # every step exactly once


def test_stateful_batch_arrays_are_contiguous_per_lane() -> None:
    steps = np.arange(103, dtype=np.float32)
    inputs = steps[:, None]
    targets = np.concatenate([steps[1:], [np.nan]])[:, None]
    x, y, w = stateful_batches(inputs, targets, batch_size=4, chunk=5)
    x = x.reshape(5, 4, 5)  # (batch, lane, step)
    for lane in range(4):
        np.testing.assert_array_equal(x[:, lane].reshape(-1), np.arange(25) + 25 * lane)
    assert w.min() == 1.0 and y.shape == (20, 5, 1)
