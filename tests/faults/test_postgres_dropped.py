"""PostgreSQL connections dropped under both engines: a server restart, and every client
connection terminated, while legacy robots and Temporal workers (processes) are renewing."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment

from legacy_adapter import LegacyEngine
from ops.postgres import EmbeddedPostgres
from ops.registry_sim.server import SimServer
from tests.faults.support import (
    EXPIRY,
    Processes,
    assert_nothing_lost_or_duplicated,
    burst_domains,
    findings_of,
    in_flight,
    submit_burst,
    until,
)
from tests.harness import Harness, harness

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def own_sim(own_pg: EmbeddedPostgres) -> Iterator[SimServer]:
    """The registry simulator, storing into the test's own server (it loses connections too)."""
    with SimServer(own_pg.dsn) as server:
        yield server


@pytest.fixture
async def pg_h(
    temporal_env: WorkflowEnvironment, own_pg: EmbeddedPostgres, own_sim: SimServer
) -> AsyncIterator[Harness]:
    async with harness(temporal_env.client, own_pg.dsn, own_sim.url) as built:
        yield built


async def _both_engines_through(
    h: Harness, procs: Processes, since: dt.datetime, fault: Callable[[], Awaitable[None]]
) -> None:
    h.admin.configure("de", latency_ms=300)  # Temporal's renewals
    h.admin.configure("eu", latency_ms=300)  # legacy's
    worker = procs.worker(h)
    robots = procs.robots(h, robots="3", max_attempts="20")
    await submit_burst(h, "de", 24)
    legacy = burst_domains("eu", 12, "old")
    h.seed("eu", *legacy, expiry=EXPIRY)
    adapter = LegacyEngine(h.pool)
    for domain in legacy:
        await adapter.create(h.request(domain, EXPIRY))

    async def both_busy() -> bool:
        return await in_flight(h, "temporal") >= 5 and await in_flight(h, "legacy") >= 2

    await until(both_busy, "both engines renewing", explain=procs.tails)
    await fault()

    summary = await assert_nothing_lost_or_duplicated(h, since)

    assert worker.alive(), worker.tail()
    assert robots.alive(), robots.tail()  # the robots kept polling through the outage
    # legacy has no keys of its own and may show findings of its own; Temporal shows none
    assert findings_of(summary, "temporal") == {}, summary.details


async def test_postgres_restarted_under_both_engines(
    pg_h: Harness, own_pg: EmbeddedPostgres, procs: Processes, since: dt.datetime
) -> None:
    """PostgreSQL restarted mid-burst: pools reconnect, all finish, Temporal side clean."""

    async def restart() -> None:
        await asyncio.to_thread(own_pg.stop)  # -m fast: every session cut
        await asyncio.sleep(2.0)  # an outage, not a blip
        await asyncio.to_thread(own_pg.start)

    await _both_engines_through(pg_h, procs, since, restart)


async def test_postgres_connections_terminated_under_both_engines(
    pg_h: Harness, own_pg: EmbeddedPostgres, procs: Processes, since: dt.datetime
) -> None:
    """Every client connection terminated, three times mid-burst: all finish, Temporal clean."""

    async def terminate_all() -> None:
        for _ in range(3):
            async with await psycopg.AsyncConnection.connect(own_pg.dsn, autocommit=True) as conn:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            await asyncio.sleep(0.7)

    await _both_engines_through(pg_h, procs, since, terminate_all)
