"""Metrics both engines share, and the optional /metrics listener of the long-running commands.

`dualrun serve` answers /metrics itself; `dualrun worker`, `dualrun scheduler` and
`dualrun legacy-engine` open a listener only when given `--metrics-port` (loopback by default).
"""

from __future__ import annotations

import datetime as dt

import structlog
from prometheus_client import Counter, Histogram, start_http_server

log = structlog.get_logger(__name__)

# From seconds (Temporal) to an hour (a legacy backlog on the 1st of the month).
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)

RENEWAL_DURATION = Histogram(
    "dualrun_renewal_duration_seconds",
    "Seconds from an operation's creation to its done renewal, by the engine that ran it",
    ["engine", "tld"],
    buckets=DURATION_BUCKETS,
)

MOVES_REFUSED = Counter(
    "dualrun_operation_moves_refused_total",
    "Writes the database refused: status moves (done, cancelled and superseded are final; "
    "failed goes back to work only through a relaunch, requeue or reset run), a final row's "
    "outcome rewritten (to_status: its own status), a row deleted (to_status: deleted)",
    ["engine", "from_status", "to_status"],
)


def observe_renewal(engine: str, tld: str, created_at: dt.datetime, now: dt.datetime) -> None:
    """Count a renewal done at `now` (never a negative duration, whatever the clocks say)."""
    seconds = max((now - created_at).total_seconds(), 0.0)
    RENEWAL_DURATION.labels(engine=engine, tld=tld).observe(seconds)


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Serve the process's metrics on http://host:port/metrics (a daemon thread); None: off."""
    if port is None:
        return
    start_http_server(port, addr=host)
    log.info("metrics.listening", host=host, port=port)
