"""A Temporal worker process SIGKILLed in the middle of a burst of renewals."""

from __future__ import annotations

import datetime as dt
import signal

import pytest

from tests.faults.support import (
    Processes,
    assert_nothing_lost_or_duplicated,
    in_flight,
    submit_burst,
    until,
)
from tests.harness import Harness

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_worker_killed_mid_burst_every_renewal_completes_once(
    h: Harness, procs: Processes, since: dt.datetime
) -> None:
    """SIGKILL the only worker with a burst in flight; a new one finishes each renewal once."""
    h.admin.configure("com", latency_ms=400)
    first = procs.worker(h, "worker-1")
    await submit_burst(h, "com", 30)

    async def renewing() -> bool:  # several in flight, some of them at the registry step
        rows = await h.query(
            "SELECT count(*) FILTER (WHERE step = 'renew') AS renew, count(*) AS n"
            " FROM operations WHERE status = 'doing' AND step IS NOT NULL"
        )
        return int(rows[0]["renew"]) >= 3 and int(rows[0]["n"]) >= 5

    await until(renewing, "several renewals in flight", explain=procs.tails)
    assert await procs.kill(first) == -signal.SIGKILL
    assert await in_flight(h) > 0  # the kill left renewals half done
    h.admin.configure("com", latency_ms=0)
    second = procs.worker(h, "worker-2")

    summary = await assert_nothing_lost_or_duplicated(h, since)

    assert summary.findings == {}, summary.details
    assert second.alive(), second.tail()
