from __future__ import annotations

import numpy as np

from app.ml.data import Split
from app.ml.windows import (
    MIN_STATEFUL_BATCHES,
    masked_window_ends,
    stateful_batches,
    stateful_layout,
    window_ends,
)

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


def test_a_year_of_half_hourly_readings_trains_on_many_batches_and_drops_no_chunk() -> None:
    # A year of readings, 10% validation and 10% test: the training part as one piece.
    n_train = int(365 * 48 * 0.8)
    layout = stateful_layout([(0, n_train)], chunk=48, max_lanes=64)
    assert layout.batches >= MIN_STATEFUL_BATCHES
    assert layout.lanes > 1
    chunks = layout.lengths[layout.lengths > 0]
    assert chunks.sum() == n_train  # every reading is trained on
    assert (chunks < 48).sum() <= 1  # at most one chunk is short, and it is padded


def test_lane_s_of_batch_b_plus_1_continues_lane_s_of_batch_b() -> None:
    layout = stateful_layout([(0, 17_520)], chunk=48, max_lanes=64)
    starts, lengths = layout.starts, layout.lengths
    following = (starts[1:] >= 0) & (starts[:-1] >= 0)
    np.testing.assert_array_equal((starts[1:] - starts[:-1])[following], lengths[:-1][following])
    assert layout.reset[0].all() and not layout.reset[1:][following].any()
    chunks = zip(starts.flat, lengths.flat, strict=True)
    covered = np.sort(np.concatenate([np.arange(a, a + n) for a, n in chunks if n]))
    np.testing.assert_array_equal(covered, np.arange(17_520))  # every step exactly once


def test_a_lane_restarts_its_state_where_it_enters_a_new_piece() -> None:
    # Three pieces (gaps between them), one lane: the state resets at each piece's first chunk.
    layout = stateful_layout([(0, 10), (12, 27), (30, 35)], chunk=5, max_lanes=1)
    assert layout.lanes == 1
    np.testing.assert_array_equal(layout.starts[:, 0], [0, 5, 12, 17, 22, 30])
    np.testing.assert_array_equal(layout.reset[:, 0], [True, False, True, False, False, True])


def test_short_series_train_on_one_lane() -> None:
    layout = stateful_layout([(0, 300)], chunk=10, max_lanes=64)
    assert layout.lanes == 1 and layout.batches == 30


def test_stateful_batch_arrays_follow_the_layout_and_weigh_out_padding() -> None:
    steps = np.arange(103, dtype=np.float32)
    inputs = steps[:, None]
    targets = np.concatenate([steps[1:], [np.nan]])[:, None]
    layout = stateful_layout([(0, 103)], chunk=5, max_lanes=4)
    x, _, w = stateful_batches(inputs, targets, np.ones(103), layout, chunk=5)
    assert layout.lanes == 1  # 21 chunks give fewer than 32 batches per lane already
    np.testing.assert_array_equal(x[:, :, 0].reshape(-1)[:103], np.arange(103))
    assert w.reshape(-1)[:102].min() == 1.0  # every known target is learnt
    assert w.reshape(-1)[102:].max() == 0.0  # the unknown last target and the padding are not


def test_selection_and_calibration_targets_never_overlap() -> None:
    split = Split(n=200, val_start=120, test_start=160)
    segments = [(0, 200)]
    selection = window_ends(segments, split, "selection", window=8, horizon=5)
    calibration = window_ends(segments, split, "calibration", window=8, horizon=5)
    assert split.calibration_start == 140
    assert selection.max() + 5 < 140 <= calibration.min() + 1
    assert calibration.max() + 5 < 160


def test_the_calibration_tail_ends_the_training_part_and_never_meets_the_selection() -> None:
    split = Split(n=200, val_start=120, test_start=160, calibration_tail=30)
    segments = [(0, 200)]
    tail = window_ends(segments, split, "calibration_tail", window=8, horizon=5)
    assert tail.min() + 1 == 90 and tail.max() + 5 == 119  # every target in 90..119
    assert window_ends(segments, Split(200, 120, 160), "calibration_tail", window=8, horizon=5).size == 0


def test_masked_origins_are_observed_readings_with_an_observed_target() -> None:
    values = np.arange(40.0)
    values[[20, 21, 22, 30, 31, 32, 33, 34, 35]] = np.nan
    split = Split(n=40, val_start=24, test_start=36)
    ends = masked_window_ends(values, split, "validation", window=8, horizon=3)
    # Origins 23..32 whose targets lie in 24..35: observed ones with an observed target.
    assert ends.tolist() == [23, 24, 25, 26, 27, 28]  # 29..32: all targets missing
    daily = masked_window_ends(values, split, "validation", window=8, horizon=3, every=6)
    assert daily.tolist() == [28]  # the last usable origin of each block of 6 from 23
