"""The Temporal dev server SIGKILLed with renewals in flight and restarted on its file database."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from ops.registry_sim.server import SimServer
from tests.faults.support import (
    DevServer,
    Processes,
    assert_nothing_lost_or_duplicated,
    free_port,
    in_flight,
    submit_burst,
    until,
)
from tests.harness import harness

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
async def dev_server(procs: Processes, tmp_path: Path) -> AsyncIterator[DevServer]:
    """This test's own dev server on a SQLite file (its process is killed at teardown)."""
    server = DevServer(procs, tmp_path / "temporal.db", free_port(), free_port(), free_port())
    await server.start()
    yield server


async def test_dev_server_restarted_on_its_file_every_renewal_completes_once(
    dev_server: DevServer, db_dsn: str, sim: SimServer, procs: Processes, since: dt.datetime
) -> None:
    """SIGKILL the server mid-burst, restart it on the same file: each renewal done once."""
    client = await Client.connect(dev_server.address)
    async with harness(client, db_dsn, sim.url) as h:
        h.admin.configure("fr", latency_ms=500)
        worker = procs.worker(h)
        await submit_burst(h, "fr", 30)

        async def several_in_flight() -> bool:
            return await in_flight(h) >= 5

        await until(several_in_flight, "several renewals in flight", explain=procs.tails)
        assert await dev_server.kill(signal.SIGKILL) == -signal.SIGKILL
        assert not dev_server.serving()
        assert await in_flight(h) > 0  # the server died with renewals half done
        # down for longer than an activity may run: what was running times out and is
        # retried once the server is back, while the worker's polls and reports fail
        await asyncio.sleep(h.settings.activity_timeout_s + 2)
        await dev_server.start()  # same port, same file

        summary = await assert_nothing_lost_or_duplicated(h, since)

        assert summary.findings == {}, summary.details
        assert dev_server.starts == 2
        assert worker.alive(), worker.tail()  # it rode out the outage
