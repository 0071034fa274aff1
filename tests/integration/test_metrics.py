"""Metrics from real runs: renewal durations per engine, stuck work, the scheduler's /metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from legacy_adapter import LegacyEngine
from ops.legacy_engine.robots import RobotConfig, Robots
from reconciler.alerts import Webhook
from reconciler.model import Window
from reconciler.run import Reconciler
from reconciler.schedule import run_once
from reconciler.sources import ApiLedger
from renewals.billing import BillingLedger
from tests.harness import TODAY, Harness, worker_env

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=25)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reconciler(h: Harness, stuck_after: dt.timedelta) -> Reconciler:
    return Reconciler(
        pool=h.pool,
        ledger=ApiLedger(h.registry, h.settings.tlds),
        webhook=Webhook(None),
        temporal=None,
        task_queue=h.settings.task_queue,
        stuck_after=stuck_after,
    )


def window() -> Window:
    now = dt.datetime.now(dt.UTC)
    return Window(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1))


async def test_done_renewals_are_timed_per_engine(h: Harness) -> None:
    """A renewal done by the legacy robots and one done by Temporal each add to their engine."""
    h.seed("eu", "timed-legacy.eu", "timed-temporal.eu", expiry=EXPIRY)
    legacy_before = value("dualrun_renewal_duration_seconds_count", engine="legacy", tld="eu")
    temporal_before = value("dualrun_renewal_duration_seconds_count", engine="temporal", tld="eu")

    await LegacyEngine(h.pool).create(h.request("timed-legacy.eu", EXPIRY))
    config = RobotConfig(robots=1, poll_interval_s=0.05, drain=True)
    engine = Robots(h.pool, h.registry, BillingLedger(h.pool), config)
    assert (await asyncio.wait_for(engine.run(), 60)).done == 1

    async with h.workers():
        started = await h.submit(h.request("timed-temporal.eu", EXPIRY))
        assert (await h.result(started.workflow_id)).status == "done"

    assert value("dualrun_renewal_duration_seconds_count", engine="legacy", tld="eu") == (
        legacy_before + 1
    )
    assert value("dualrun_renewal_duration_seconds_count", engine="temporal", tld="eu") == (
        temporal_before + 1
    )
    assert value("dualrun_renewal_duration_seconds_sum", engine="temporal", tld="eu") > 0


async def test_stuck_gauge_follows_each_run_and_each_skipped_tick(h: Harness) -> None:
    """A run counts the unfinished operations past the deadline; a replica that skips a tick
    refreshes the count too; the last-run time of the kind is set."""
    adapter = LegacyEngine(h.pool)
    first, second = h.request("stuck-a.com", EXPIRY), h.request("stuck-b.com", EXPIRY)
    for request in (first, second):
        await adapter.create(request)
    rec = reconciler(h, stuck_after=dt.timedelta(0))
    started = dt.datetime.now(dt.UTC).timestamp()
    await rec.run(window(), "manual")
    assert value("dualrun_stuck_operations", tld="com", engine="legacy") == 2
    assert value("dualrun_reconcile_last_run_timestamp_seconds", kind="manual") >= started - 1

    async with h.pool.connection() as conn:
        await conn.execute(
            "UPDATE operations SET status = 'failed' WHERE operation_id = %s", (first.operation_id,)
        )
    tick = window()
    assert await run_once(rec, tick, "sweep", sweep=True) is not None
    assert value("dualrun_stuck_operations", tld="com", engine="legacy") == 1

    async with h.pool.connection() as conn:
        await conn.execute(
            "UPDATE operations SET status = 'done' WHERE operation_id = %s", (second.operation_id,)
        )
    assert await run_once(rec, tick, "sweep", sweep=True) is None  # already run: skipped
    assert value("dualrun_stuck_operations", tld="com", engine="legacy") == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_scheduler_serves_its_metrics(h: Harness, tmp_path: Path) -> None:
    """`dualrun scheduler --metrics-port` answers /metrics with the sweep's gauges and the
    primed findings counter, on 127.0.0.1."""
    port = _free_port()
    env = {"PATH": os.environ.get("PATH", ""), **worker_env(h.settings)}
    log = tmp_path / "scheduler.log"
    proc = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-m",
            "dualrun",
            "scheduler",
            "--sweep-every",
            "2",
            "--catch-up-days",
            "0",
            "--metrics-port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    text = ""
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def swept() -> bool:
                nonlocal text
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.HTTPError:
                    return False
                return 'dualrun_reconcile_last_run_timestamp_seconds{kind="sweep"}' in text

            await h.wait_for(swept, within=60, every=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, log.read_text()[-3000:]
    assert 'dualrun_findings_total{kind="double_charge",tld="fr"} 0.0' in text
    assert "dualrun_alert_webhook_failures_total 0.0" in text
