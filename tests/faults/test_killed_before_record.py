"""A Temporal worker SIGKILLed after the registry renewed and before the row recorded it; an
operator then resets the renewal with the real `temporal` CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess

import pytest

from tests.faults.support import (
    EXPIRY,
    Processes,
    assert_nothing_lost_or_duplicated,
    burst_domains,
    temporal_binary,
    until,
)
from tests.harness import Harness

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def temporal_cli(h: Harness, *args: str) -> str:
    cmd = [temporal_binary(), *args, "--address", h.settings.temporal_target]
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} -> {done.returncode}: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize("reset_type", ["FirstWorkflowTask", "LastWorkflowTask"])
async def test_worker_killed_between_renew_and_record_then_reset_renews_once(
    h: Harness, procs: Processes, since: dt.datetime, reset_type: str
) -> None:
    """SIGKILL the worker once the registry renewed and before its answer (so the record) came
    back; a new worker and `temporal workflow reset`: done, one renewal, one net charge."""
    (domain,) = burst_domains("fr", 1, f"unrecorded-{reset_type[:5].lower()}")
    h.seed("fr", domain, expiry=EXPIRY)
    h.admin.configure("fr", commit_timeout_rate=1.0, hold_s=8.0)  # renewed, answer held
    first = procs.worker(h, "worker-1")
    request = h.request(domain, EXPIRY)
    op, wid = request.operation_id, request.idempotency_key
    await h.submit(request)

    async def renewed() -> bool:
        return bool(h.admin.ledger("fr", domain=domain))

    await until(renewed, "the registry's renewal", explain=procs.tails)
    assert await procs.kill(first) == -signal.SIGKILL  # its answer never reached the worker
    row = await h.row(op)
    assert (row["status"], row["new_expiry"]) == ("doing", None)  # renewed, never recorded
    h.admin.configure("fr", commit_timeout_rate=0.0)
    second = procs.worker(h, "worker-2")
    before = (await h.client.get_workflow_handle(wid).describe()).run_id
    await temporal_cli(h, "workflow", "reset", "--workflow-id", wid, "--type", reset_type,
                       "--reason", "fault drill: worker killed before the record")  # fmt: skip

    summary = await assert_nothing_lost_or_duplicated(h, since)

    assert summary.findings == {}, summary.details
    after = await h.client.get_workflow_handle(wid).describe()
    assert after.run_id != before and after.status is not None
    assert after.status.name == "COMPLETED"
    (renewal,) = h.admin.ledger("fr", domain=domain)
    assert renewal["client_tx_id"] == wid
    row = await h.row(op)
    assert (row["status"], row["registry_transaction_id"]) == ("done", renewal["server_tx_id"])
    assert await h.net_charges(wid) == 1
    assert second.alive(), second.tail()
