"""Every goal the benchmarks check, in one place: the scripts print against these, and
docs/benchmarks.md cites them by name."""

# bench/ingest.py: readings per second of one CSV upload, on both databases.
INGEST_READINGS_PER_S = 200_000

# bench/train.py: statecast's training against a plain Keras `fit` of the same network, data and
# batches, both for a window model and for a stateful stream model.
TRAIN_TIME_RATIO_MAX = 1.15
TRAIN_MEMORY_RATIO_MAX = 1.25

# bench/stream.py: a one-reading stream post against `GET /healthz` on the same server, by
# requests per second, per database.
STREAM_POST_OVER_HEALTHZ_MIN = {"sqlite": 0.40, "postgresql": 0.20}
# ... against the plain Keras app (`bench/keras_baseline.py`), by requests per second.
STREAM_POST_OVER_KERAS_MIN = 30.0
# ... readings per second of 10,000-reading posts to one stream.
STREAM_BATCH_READINGS_PER_S = 100_000
# ... p50 of `GET /v1/streams/{id}/forecast?horizon=96`.
FORECAST_96_P50_MS_MAX = 5.0
# ... a one-reading post's time on a model that reads a covariate against one on the same spec
# that reads none (issue 17).
COVARIATE_POST_OVER_PLAIN_MAX = 1.10

# bench/load.py: the mixed load's requests per second against the recorded old figure, its p99
# and its server errors.
LOAD_SPEEDUP_MIN = 3.0
LOAD_P99_MS_MAX = 300.0

# bench/fleet.py: stream-readings per second of bulk posts at 10,000 streams; readings per second
# at the largest fleet against the smallest; p99 of single posts from 64 connections on
# PostgreSQL.
FLEET_BULK_READINGS_PER_S = 100_000
FLEET_SCALING_MIN = 0.80
FLEET_SINGLE_P99_MS_MAX = 50.0

# bench/fit_cutoff.py: the MASE cost on Taylor of the seasonal fits made ahead (their readings end
# `FIT_LEAD_S` before the day) against the day's own fit, one-step and day-ahead.
FIT_AHEAD_MASE_COST_MAX = 0.02
