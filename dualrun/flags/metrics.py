"""Prometheus metrics of the flag sources and the routing decisions (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from dualrun.flags.model import FlagSourceKind
from renewals.model import Mode

FLAG_SOURCE = Gauge(
    "dualrun_flag_source",
    "1 for the flag source the router uses now (unleash, last-known, bootstrap, default)",
    ["source"],
)
FLAG_FALLBACKS = Counter(
    "dualrun_flag_fallbacks_total",
    "Times the router fell back from the Unleash server to another flag source",
    ["source"],
)
ROUTING_DECISIONS = Counter(
    "dualrun_routing_decisions_total",
    "Routing decisions stored (one per idempotency key)",
    ["tld", "engine", "mode", "source"],
)
SUBMISSIONS = Counter(
    "dualrun_submissions_total",
    "Renewal submissions by result (created, deduplicated, conflict)",
    ["result"],
)
DISPATCH_FAILURES = Counter(
    "dualrun_dispatch_failures_total",
    "Workflow starts that failed after the decision was committed (row left todo)",
    ["mode"],
)
for _mode in (Mode.TEMPORAL, Mode.SHADOW):  # exported at 0: the first failure is an increase
    DISPATCH_FAILURES.labels(mode=_mode.value)


def show_source(current: FlagSourceKind) -> None:
    for kind in FlagSourceKind:
        FLAG_SOURCE.labels(source=kind.value).set(1 if kind == current else 0)
