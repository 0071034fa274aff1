"""Shared helpers of the relaunch tests: renewals failed in an outage, the relaunch process."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from legacy_adapter import LegacyEngine
from ops.legacy_engine.robots import RobotConfig, Robots
from ops.registry_sim.server import SimServer
from renewals.billing import BillingLedger
from renewals.model import RenewalRequest
from tests.harness import TODAY, Harness, harness, worker_env

EXPIRY = TODAY + dt.timedelta(days=25)
ROBOTS = RobotConfig(
    robots=2, poll_interval_s=0.05, lease_s=5.0, retry_delay_s=0.1, max_attempts=1, owner="t"
)


@pytest.fixture
async def hr(temporal_env: Any, db_dsn: str, sim: SimServer) -> AsyncIterator[Harness]:
    """The harness with a registry retry bound of 2 (an outage fails renewals in about 1 s)
    and provider limits high enough for hundreds of renewals a second."""
    async with harness(
        temporal_env.client,
        db_dsn,
        sim.url,
        DUALRUN_REGISTRY_MAX_ATTEMPTS="2",
        DUALRUN_REGISTRY_RATE_LIMITS="com=200,fr=200,info=200",
    ) as built:
        for tld in ("com", "fr", "info"):
            built.admin.configure(tld, rate_limit=1000.0, burst=1000)
        yield built


def _env(h: Harness) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **worker_env(h.settings)}


async def spawn_relaunch(h: Harness, *args: str) -> asyncio.subprocess.Process:
    """A real `dualrun relaunch` process on this test's schema, queues and Temporal."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "dualrun", "relaunch", *args),
        env=_env(h),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def relaunch(h: Harness, *args: str) -> tuple[int, str, str]:
    """Run `dualrun relaunch ARGS` to its end: (exit status, stdout, stderr)."""
    proc = await spawn_relaunch(h, *args)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def count(h: Harness, sql: str, *params: Any) -> int:
    rows = await h.query(sql, *params)
    return int(next(iter(rows[0].values())))


async def until_status(
    h: Harness, status: str, n: int, within: float = 120, ids: list[str] | None = None
) -> None:
    """Poll until `n` operations (of `ids`, when given) have `status`."""
    sql = "SELECT count(*) FROM operations WHERE status = %s AND (%s::text[] IS NULL"
    sql += " OR operation_id = ANY(%s))"

    async def reached() -> bool:
        return await count(h, sql, status, ids, ids) == n

    await h.wait_for(reached, within=within, every=0.2)


async def submit_all(h: Harness, requests: list[RenewalRequest]) -> None:
    for start in range(0, len(requests), 25):
        await asyncio.gather(*(h.submit(r) for r in requests[start : start + 25]))


async def fail_in_outage(h: Harness, tld: str, names: list[str]) -> list[RenewalRequest]:
    """Temporal renewals of `names` that fail in a provider outage (the bound of 2 is spent)."""
    h.seed(tld, *names, expiry=EXPIRY)
    requests = [h.request(d, EXPIRY) for d in names]
    h.admin.configure(tld, error_rate=1.0)
    await submit_all(h, requests)
    ids = [r.operation_id for r in requests]
    await until_status(h, "failed", len(requests), within=120, ids=ids)
    h.admin.configure(tld, error_rate=0.0)
    return requests


def robots(h: Harness) -> Robots:
    """Legacy robots in process that stop once no legacy work is left (drain)."""
    return Robots(h.pool, h.registry, BillingLedger(h.pool), replace(ROBOTS, drain=True))


async def legacy_failed_in_outage(h: Harness, tld: str, names: list[str]) -> list[str]:
    """Legacy renewals of `names`, failed by the robots in an outage (max_attempts 1)."""
    h.seed(tld, *names, expiry=EXPIRY)
    adapter = LegacyEngine(h.pool)
    ops = [(await adapter.create(h.request(d, EXPIRY))).operation_id for d in names]
    h.admin.configure(tld, error_rate=1.0)
    await asyncio.wait_for(robots(h).run(), 60)
    h.admin.configure(tld, error_rate=0.0)
    return ops


async def renewals_and_charges(h: Harness, tld: str) -> tuple[Counter[str], Counter[str]]:
    renewed = Counter(r["domain"] for r in h.admin.ledger(tld))
    rows = await h.query(
        "SELECT o.domain FROM billing_ledger b JOIN operations o USING (operation_id)"
        " WHERE b.kind = 'charge' AND o.tld = %s",
        tld,
    )
    return renewed, Counter(r["domain"] for r in rows)


async def runs_per_workflow(h: Harness, expected_total: int) -> Counter[str]:
    """Runs per workflow id on this test's task queue (visibility, polled until complete)."""
    runs: Counter[str] = Counter()

    async def listed() -> bool:
        runs.clear()
        query = f'TaskQueue = "{h.settings.task_queue}"'
        async for wf in h.client.list_workflows(query):
            runs[wf.id] += 1
        return sum(runs.values()) == expected_total

    await h.wait_for(listed, within=60, every=0.5)
    return runs
