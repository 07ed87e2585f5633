"""The Prometheus metrics, served at ``GET /metrics``.

They are created once per process, at import. ``crmdeals serve --workers N`` (N > 1) sets
``PROMETHEUS_MULTIPROC_DIR`` before it starts the workers, so each worker writes its values
to files there and ``/metrics``, whichever worker answers, sums them all.
"""

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "crmdeals_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "crmdeals_request_duration_seconds",
    "Time from the request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DEALS_PER_UPLOAD = Histogram(
    "crmdeals_upload_deals",
    "Deals stored by each successful upload (after duplicates collapsed).",
    buckets=(1, 10, 25, 50, 75, 99, 100),
)
RATE_LIMITED = Counter(
    "crmdeals_rate_limited",
    "Requests refused with 429, by what was counted: an account or a client address.",
    ["scope"],
)
RATE_LIMIT_UNCHECKED = Counter(
    "crmdeals_rate_limit_unchecked",
    "Requests served without a rate-limit check because Redis could not be reached.",
)
DB_WRITE_RETRIES = Counter(
    "crmdeals_db_write_retries",
    "Writes run again after PostgreSQL aborted them for a conflict, by SQLSTATE.",
    ["sqlstate"],
)
DB_UNAVAILABLE = Counter(
    "crmdeals_db_unavailable",
    "Database transactions answered 503 because the database could not be reached, did "
    "not answer within CRMDEALS_DB_TIMEOUT, or was too busy (no free connection, a lock).",
)
CONNECTIONS_DROPPED = Counter(
    "crmdeals_connections_dropped",
    "Connections closed at the cap on connections (CRMDEALS_MAX_CONNECTIONS), by reason: "
    "'shed' (waited longest for a request head, closed to make room) or 'refused' (new, "
    "answered 503 because every other connection was busy with a request).",
    ["reason"],
)

DELIVERIES = Counter(
    "crmdeals_webhook_deliveries",
    "Webhook delivery attempts recorded, by kind and outcome: 'delivered', 'failed' (the "
    "last attempt, or one that is never retried) or 'retry' (another attempt will follow).",
    ["kind", "outcome"],
)
DELIVERY_ATTEMPT_SECONDS = Histogram(
    "crmdeals_webhook_attempt_duration_seconds",
    "Time each webhook attempt took, from the connection to the end of the answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES_PENDING = Gauge(
    "crmdeals_webhook_deliveries_pending",
    "Webhook deliveries of every account waiting to be attempted (or attempted again), as "
    "last seen by the process's delivery loop.",
    multiprocess_mode="max",
)


def exposition() -> bytes:
    """Every metric in the Prometheus text format: this process's, or all workers'."""
    if MULTIPROCESS_DIR_VARIABLE in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
