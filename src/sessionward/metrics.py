"""What ``/metrics`` reports, for the whole server.

With ``serve --workers N`` every worker writes its values to files in one folder (prometheus_client's multiprocess
mode: ``PROMETHEUS_MULTIPROC_DIR``, set by ``serve`` before the workers start) and a scrape, answered by any worker,
adds them up. One process keeps them in memory. What is the database's, not a process's (the outbox), is read when
scraped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter("sessionward_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "sessionward_http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
_REFRESHES = Counter("sessionward_refreshes_total", "Refresh token presentations by outcome", ["outcome"])
_LOGINS = Counter("sessionward_logins_total", "Sign-in attempts by outcome", ["outcome"])
_REVOKED = Counter("sessionward_sessions_revoked_total", "Sessions ended, by reason (evicted: the cap)", ["reason"])
BROADCAST_LAG = Histogram(
    "sessionward_revocation_broadcast_lag_seconds",
    "From a revocation's publication on the Redis bus to another process applying it",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
DB_IN_USE = Gauge(
    "sessionward_db_connections_in_use", "Connections lent to write transactions", multiprocess_mode="livesum"
)
DB_WAITS = Counter("sessionward_db_connection_waits_total", "Write transactions that waited for a connection")
CLEANUP_ROWS = Counter("sessionward_cleanup_rows_total", "Rows removed or wiped by cleanup", ["table"])

# Children made once: ``labels()`` takes a lock and builds its key on every call, and a refresh is a hot path.
REFRESH = {outcome: _REFRESHES.labels(outcome) for outcome in ("rotated", "grace", "reused", "refused")}
LOGIN = {outcome: _LOGINS.labels(outcome) for outcome in ("succeeded", "failed", "mfa_required", "mfa_failed")}
# What a session's ending is called outside, by the reason its row records.
REASONS = {
    "logout": "logout",
    "session_revoked": "revoked",
    "revoked_others": "revoked",
    "token_revoked": "revoked",
    "account_deleted": "revoked",
    "evicted": "evicted",
    "refresh_token_reused": "reused",
    "password_changed": "password_changed",
    "password_reset": "password_reset",
    "admin": "admin",
}
REVOKED = {reason: _REVOKED.labels(reason) for reason in dict.fromkeys(REASONS.values())}

OUTBOX_KINDS = ("mail",)  # each kind of row the outbox delivers


@contextlib.contextmanager
def shared_folder(workers: int) -> Iterator[None]:
    """For ``serve``: with several workers, a folder for their values (an operator's own ``PROMETHEUS_MULTIPROC_DIR``
    is kept), removed when the server stops."""
    if workers == 1 or MULTIPROCESS_ENV in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="sessionward-metrics-") as folder:
        os.environ[MULTIPROCESS_ENV] = folder
        try:
            yield
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)


class _Snapshot(Collector):
    """Values read for one scrape."""

    def __init__(self, families: Iterable[GaugeMetricFamily]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self.families


def outbox_families(pending: dict[str, tuple[int, datetime | None]], now: datetime) -> list[GaugeMetricFamily]:
    """``pending``: per kind, the rows waiting and the oldest one's time."""
    depth = GaugeMetricFamily("sessionward_outbox_pending", "Outbox rows not yet delivered", labels=["kind"])
    age = GaugeMetricFamily(
        "sessionward_outbox_oldest_age_seconds", "Age of the oldest undelivered outbox row", labels=["kind"]
    )
    for kind in OUTBOX_KINDS:
        count, oldest = pending.get(kind, (0, None))
        depth.add_metric([kind], count)
        age.add_metric([kind], (now - oldest).total_seconds() if oldest is not None else 0.0)
    return [depth, age]


def render(families: Iterable[GaugeMetricFamily]) -> bytes:
    """The text format: every process's values (or this one's), then ``families``."""
    if MULTIPROCESS_ENV in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        shared = generate_latest(registry)
    else:
        shared = generate_latest(REGISTRY)
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(families))
    return shared + generate_latest(snapshot)
