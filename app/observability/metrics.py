"""The service's Prometheus metrics, defined once so any module can import and update them.

Counters and histograms live in the process that updates them. Worker processes are separate,
so what they count reaches `GET /metrics` only in multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`
set to an empty folder for the API and its workers alike); queue gauges are instead read from the
database at scrape time, which is right whichever process changed the queue.
"""

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# `*_created` timestamps double every series on the page and no dashboard reads them.
disable_created_metrics()

# Request latencies span a fast JSON read (~1 ms) to a large CSV upload (seconds).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                     30.0)
# Training runs take from seconds (tests) to an hour (the job time limit).
TRAINING_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)

HTTP_REQUESTS = Counter(
    "statecast_http_requests", "HTTP requests answered, by route template and status.",
    ["method", "route", "status"])
HTTP_REQUEST_SECONDS = Histogram(
    "statecast_http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
    ["method", "route"], buckets=LATENCY_BUCKETS_S)
HTTP_IN_FLIGHT = Gauge(
    "statecast_http_requests_in_flight", "HTTP requests being answered now.",
    multiprocess_mode="livesum")

JOBS = Gauge(
    "statecast_jobs", "Jobs in the queue's table, by status (read at scrape time).", ["status"],
    multiprocess_mode="livemax")
QUEUE_DEPTH = Gauge(
    "statecast_queue_depth", "Jobs waiting to be claimed (read at scrape time).",
    multiprocess_mode="livemax")
WORKERS_ALIVE = Gauge(
    "statecast_workers_alive",
    "Workers that polled the queue within STATECAST_WORKER_STALE_AFTER_S (read at scrape time).",
    multiprocess_mode="livemax")
WORKER_LAST_POLL_AGE = Gauge(
    "statecast_worker_last_poll_age_seconds",
    "Seconds since any worker last polled the queue; -1 when none ever has (read at scrape time).",
    multiprocess_mode="livemax")
OLDEST_QUEUED_AGE = Gauge(
    "statecast_oldest_queued_job_age_seconds",
    "Age of the oldest job waiting to be claimed; 0 when none waits (read at scrape time).",
    multiprocess_mode="livemax")
QUEUE_STALLED = Gauge(
    "statecast_queue_stalled",
    "1 when jobs wait and no worker is alive (/readyz fails then), else 0.",
    multiprocess_mode="livemax")
JOBS_FINISHED = Counter(
    "statecast_jobs_finished", "Jobs that reached a final status, by status.", ["status"])
TRAINING_SECONDS = Histogram(
    "statecast_training_duration_seconds", "Wall time of a training run, by cell type.", ["cell"],
    buckets=TRAINING_BUCKETS_S)

STREAM_READINGS = Counter(
    "statecast_stream_readings_applied", "Readings that advanced a stream's hidden state.")
MODEL_CACHE_HITS = Counter(
    "statecast_model_cache_hits", "Forecasts served by a model already loaded in memory.")
MODEL_CACHE_MISSES = Counter(
    "statecast_model_cache_misses", "Forecasts that had to load a model from its files.")
SEASONAL_FITS_STALE = Counter(
    "statecast_seasonal_fits_stale",
    "Stream reads of a seasonal fit older than the reading's day: the workers had not made the "
    "day's fit yet (app/worker/fits_task.py), so the newest stored one was read instead.")
