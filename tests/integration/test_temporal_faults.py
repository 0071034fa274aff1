"""RenewDomain under faults: a worker SIGKILLed mid-renewal, and a provider's 429 storm."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ops.registry_sim.server import SimServer
from renewals.model import add_years
from tests.harness import TODAY, Harness, harness, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EXPIRY = TODAY + dt.timedelta(days=25)


def spawn_worker(h: Harness, log: Path) -> subprocess.Popen[bytes]:
    """A real `dualrun worker` process serving this test's queues."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **worker_env(h.settings)}
    return subprocess.Popen(
        [sys.executable, "-m", "dualrun", "worker", "--graceful-timeout", "1"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def test_worker_killed_mid_renewal_completes_exactly_once(h: Harness, tmp_path: Path) -> None:
    """SIGKILL the worker while the registry call is in flight; a new worker finishes it once."""
    h.seed("fr", "killed.fr", expiry=EXPIRY)
    h.admin.configure("fr", latency_ms=1500)
    request = h.request("killed.fr", EXPIRY)
    log = tmp_path / "worker.log"
    first = spawn_worker(h, log)
    try:
        started = await h.submit(request)

        async def renewing() -> bool:
            return (await h.row(request.operation_id))["step"] == "renew"

        await h.wait_for(renewing, within=60)
        await asyncio.sleep(0.3)  # the renew request is on the wire
        os.killpg(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        h.admin.configure("fr", latency_ms=0)
        second = spawn_worker(h, log)
        try:
            result = await h.result(started.workflow_id, within=90)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert result.status == "done"
    assert result.new_expiry == add_years(EXPIRY, 1).isoformat()
    assert len(h.admin.ledger("fr", domain="killed.fr")) == 1
    charges = await h.query(
        "SELECT * FROM billing_ledger WHERE idempotency_key = %s", request.idempotency_key
    )
    assert [c["kind"] for c in charges] == ["charge"]
    assert (await h.row(request.operation_id))["status"] == "done"


async def _burst(h: Harness, tld: str, n: int) -> list[object]:
    domains = [f"burst{i:03d}.{tld}" for i in range(n)]
    h.seed(tld, *domains, expiry=EXPIRY)
    requests = [h.request(d, EXPIRY) for d in domains]
    started = [await h.submit(r) for r in requests]
    return await asyncio.gather(*(h.result(s.workflow_id, within=120) for s in started))


@pytest.mark.slow
async def test_queue_rate_limit_keeps_under_the_provider_limit(
    temporal_env: WorkflowEnvironment, db_dsn: str, sim: SimServer, tmp_path: Path
) -> None:
    """Three worker processes share the provider's queue rate: no 429, all complete."""
    async with harness(
        temporal_env.client, db_dsn, sim.url, DUALRUN_REGISTRY_RATE_LIMITS="eu=5"
    ) as h:
        h.admin.configure("eu", rate_limit=10.0, burst=10)
        workers = [spawn_worker(h, tmp_path / f"w{i}.log") for i in range(3)]
        try:
            results = await _burst(h, "eu", 15)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            assert [w.wait(30) for w in workers] == [0, 0, 0]
        traffic = h.admin.traffic("eu")
        ledger = h.admin.ledger("eu")
    assert all(r.status == "done" for r in results)  # type: ignore[attr-defined]
    assert traffic["rejected"] == 0, traffic
    assert traffic["admitted"] == 45
    # 5/s configured on the queue: no wall-clock second saw more than twice that
    assert max(s["admitted"] for s in traffic["seconds"]) <= 10, traffic
    assert len(ledger) == 15


@pytest.mark.slow
async def test_429_storm_every_renewal_completes_once(h: Harness) -> None:
    """A provider far below our configured rate answers 429s: all retried, each renewed once."""
    h.admin.configure("com", rate_limit=3.0, burst=3)
    async with h.workers():
        results = await _burst(h, "com", 10)
    traffic = h.admin.traffic("com")
    assert traffic["rejected"] > 0  # the storm happened
    assert all(r.status == "done" for r in results)  # type: ignore[attr-defined]
    assert max(s["admitted"] for s in traffic["seconds"]) <= 3 + 3
    ledger = h.admin.ledger("com")
    assert len(ledger) == 10 and len({r["domain"] for r in ledger}) == 10
    charges = await h.query("SELECT count(*) AS n FROM billing_ledger")
    assert charges[0]["n"] == 10
