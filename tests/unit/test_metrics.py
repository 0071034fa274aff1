"""The metrics the alert rules and the dashboard need: defined, primed at 0, served on demand."""

from __future__ import annotations

import datetime as dt
import socket

import httpx
from click.testing import CliRunner
from prometheus_client import REGISTRY

from dualrun.cli.main import cli
from dualrun.flags import metrics as flag_metrics
from reconciler import gauges
from reconciler.alerts import prime
from reconciler.model import ALERTING
from renewals.metrics import observe_renewal, serve_metrics


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_prime_exports_every_alerting_kind_at_zero() -> None:
    """Before any finding, each alerting (kind, tld) exists at 0, so a first one is an increase."""
    prime(["zz"])
    for kind in ALERTING:
        assert value("dualrun_findings_total", kind=kind.value, tld="zz") == 0


def test_dispatch_failures_are_exported_before_any_failure() -> None:
    """The workflow-start failure counter exists (from 0) for both modes that start workflows."""
    assert [m.name for m in flag_metrics.DISPATCH_FAILURES.describe()] == [
        "dualrun_dispatch_failures"
    ]
    for mode in ("temporal", "shadow"):
        assert value("dualrun_dispatch_failures_total", mode=mode) is not None


def test_stuck_gauge_goes_back_to_zero_not_away() -> None:
    """A (tld, engine) no longer stuck reads 0 (an alert resolves), the others their count."""
    gauges.show_stuck({("yy", "legacy"): 3, ("yy", "temporal"): 1})
    assert value("dualrun_stuck_operations", tld="yy", engine="legacy") == 3
    gauges.show_stuck({("yy", "temporal"): 2})
    assert value("dualrun_stuck_operations", tld="yy", engine="legacy") == 0
    assert value("dualrun_stuck_operations", tld="yy", engine="temporal") == 2


def test_renewal_duration_is_observed_per_engine_and_never_negative() -> None:
    """Seconds from creation to done land in the engine's histogram; a clock skew gives 0."""
    created = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)
    before = value("dualrun_renewal_duration_seconds_count", engine="legacy", tld="xx") or 0
    observe_renewal("legacy", "xx", created, created + dt.timedelta(seconds=90))
    observe_renewal("legacy", "xx", created, created - dt.timedelta(seconds=2))
    assert value("dualrun_renewal_duration_seconds_count", engine="legacy", tld="xx") == before + 2
    assert value("dualrun_renewal_duration_seconds_bucket", engine="legacy", tld="xx", le="0.5")
    fast = value("dualrun_renewal_duration_seconds_bucket", engine="legacy", tld="xx", le="60.0")
    slow = value("dualrun_renewal_duration_seconds_bucket", engine="legacy", tld="xx", le="120.0")
    assert fast is not None and slow == fast + 1


def test_serve_metrics_listens_on_loopback_only_when_asked() -> None:
    """No port: nothing listens; a port: /metrics answers on 127.0.0.1 with dualrun metrics."""
    serve_metrics(None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    serve_metrics(port)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "dualrun_renewal_duration_seconds" in text
    assert "dualrun_findings_total" in text


def test_long_running_commands_take_a_metrics_port() -> None:
    """worker, scheduler and legacy-engine offer --metrics-port (off by default) and a host."""
    runner = CliRunner()
    for command in ("worker", "scheduler", "legacy-engine"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--metrics-port" in result.output and "default: off" in result.output
        assert "--metrics-host" in result.output and "127.0.0.1" in result.output
    result = runner.invoke(cli, ["scheduler", "--help"])
    assert "--stuck-after" in result.output
