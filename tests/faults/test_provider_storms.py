"""A provider far below our configured rate (429 storms) that also commits renewals and never
answers (timeouts after the commit): Temporal renewals resolved by reading the registry."""

from __future__ import annotations

import datetime as dt

import pytest
from temporalio.testing import WorkflowEnvironment

from ops.registry_sim.server import SimServer
from tests.faults.support import Processes, assert_nothing_lost_or_duplicated, submit_burst
from tests.harness import harness

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_429_storm_and_unanswered_commits_each_renewal_completes_once(
    temporal_env: WorkflowEnvironment,
    db_dsn: str,
    sim: SimServer,
    procs: Processes,
    since: dt.datetime,
) -> None:
    """429s at 8/s (we allow 50/s), 30% of renews unanswered after commit: each renewed once."""
    async with harness(
        temporal_env.client, db_dsn, sim.url, DUALRUN_REGISTRY_RATE_LIMITS="info=50"
    ) as h:
        # hold_s beyond the client's 3 s registry timeout: an ambiguous outcome each time
        h.admin.configure(
            "info", rate_limit=8.0, burst=8, commit_timeout_rate=0.3, hold_s=5.0, seed=11
        )
        worker = procs.worker(h)
        await submit_burst(h, "info", 24)

        summary = await assert_nothing_lost_or_duplicated(h, since)

        assert summary.findings == {}, summary.details
        traffic = h.admin.traffic("info")
        assert traffic["rejected"] > 0, traffic  # the storm happened
        resolved = await h.query(
            "SELECT count(*) AS n FROM operation_events WHERE event = 'step.finished'"
            " AND (detail->>'resolved_from_registry_record')::boolean"
        )
        assert resolved[0]["n"] > 0  # some renewals were resolved from the registry's record
        missing = await h.query(
            "SELECT count(*) AS n FROM operations WHERE registry_transaction_id IS NULL"
        )
        assert missing[0]["n"] == 0  # ...with their registry transaction id
        assert worker.alive(), worker.tail()
