"""A Temporal reset of a FAILED renewal and the cross-engine guard: a failed row has no renewal,
so its key could be claimed by another operation while the reset run works. The reset run's
first step takes the key back (`doing`, as a relaunch); when another operation has the renewal
by then, the reset run charges and renews nothing and ends superseded, refunded."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from ops.legacy_engine.autorenew import create_batch
from ops.legacy_engine.robots import RobotConfig, Robots
from ops.registry_sim.server import SimServer
from renewals.billing import BillingLedger
from renewals.model import RenewalRequest
from temporal_flow.workflows import RenewDomain
from tests.harness import Harness, harness, save_history
from tests.integration.reset_support import (
    RENEWED,
    STATES,
    TLD,
    bring_to,
    current,
    has_event,
    net_charges,
    requests_for,
    reset,
    until_closed,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def hf(temporal_env: Any, db_dsn: str, sim: SimServer) -> AsyncIterator[Harness]:
    """The harness of a renewal that fails on its registry bound (2 attempts)."""
    async with harness(temporal_env.client, db_dsn, sim.url, **STATES["failed"][0]) as built:
        yield built


async def batch_row(h: Harness, r: RenewalRequest, op: str) -> dict[str, Any]:
    """The upstream batch writes the same renewal into the legacy tables; its row."""
    await create_batch(h.pool, [dataclasses.replace(r, operation_id=op)])
    return await h.row(op)


async def result_of(h: Harness, r: RenewalRequest) -> Any:
    run_id, _ = await current(h, r.idempotency_key)
    handle = h.client.get_workflow_handle_for(RenewDomain.run, r.idempotency_key, run_id=run_id)
    return await handle.result()


async def test_a_reset_run_of_a_failed_renewal_takes_its_key_back(hf: Harness) -> None:
    """While the reset run works, its row is `doing` again and owns the key: a batch row of the
    same renewal written then is superseded at birth; the reset run renews once."""
    h = hf
    (r,) = requests_for(h, [f"retaken.{TLD}"])
    async with h.workers():
        await bring_to(h, "failed", [r])
        h.admin.configure(TLD, error_rate=0.0, latency_ms=1500)  # the reset run is slow
        before = await reset(h, "first", "failed", [r])
        await h.wait_for(lambda: has_event(h, r, "event = 'workflow.rerun'"), within=30)
        assert (await h.row(r.operation_id))["status"] == "doing"
        late = await batch_row(h, r, "op-batch-late")
        h.admin.configure(TLD, latency_ms=0)
        await until_closed(h, before)
        result = await result_of(h, r)
    assert (late["status"], late["superseded_by"]) == ("superseded", r.operation_id)
    assert (result.status, result.new_expiry) == ("done", RENEWED.isoformat())
    row = await h.row(r.operation_id)
    assert (row["status"], row["new_expiry"]) == ("done", RENEWED)
    assert [e["client_tx_id"] for e in h.admin.ledger(TLD)] == [r.idempotency_key]
    assert await net_charges(h, r.idempotency_key) == 1


@pytest.mark.parametrize("mode", ["first", "last"])
async def test_a_reset_of_a_failed_renewal_the_batch_took_over_is_superseded_and_refunded(
    hf: Harness, mode: str
) -> None:
    """Failed after its charge; the batch then wrote the renewal (the key went to that legacy
    operation). A reset (FirstWorkflowTask, or LastWorkflowTask whose renew is tried again)
    renews nothing, refunds the charge and ends superseded, pointing to the legacy one."""
    h = hf
    (r,) = requests_for(h, [f"takenover-{mode}.{TLD}"])
    async with h.workers():
        await bring_to(h, "failed", [r])
        assert await net_charges(h, r.idempotency_key) == 1
        legacy = await batch_row(h, r, f"op-batch-{mode}")
        assert legacy["status"] == "todo"  # the failed row had no renewal: the key moved over
        h.admin.configure(TLD, error_rate=0.0)
        before = await reset(h, mode, "failed", [r])
        await until_closed(h, before)
        assert (await current(h, r.idempotency_key))[1] == WorkflowExecutionStatus.COMPLETED
        result = await result_of(h, r)
        await save_history(h, r.idempotency_key, f"reset_{mode}_superseded_refunded")
    assert (result.status, result.superseded_by) == ("superseded", legacy["operation_id"])
    row = await h.row(r.operation_id)
    assert (row["status"], row["superseded_by"]) == ("superseded", legacy["operation_id"])
    assert h.admin.ledger(TLD) == []
    assert await h.net_charges(r.operation_id, by="operation_id") == 0
    assert (await h.row(legacy["operation_id"]))["status"] == "todo"  # the renewal is legacy's


async def test_a_reset_of_a_failed_renewal_legacy_renewed_meanwhile_is_superseded(
    hf: Harness,
) -> None:
    """Failed after its charge; the batch wrote the renewal and a legacy robot renewed it. The
    reset run finds the expiry moved, no registry record of our key, and the legacy operation
    done: it refunds and ends superseded from the evidence, renewing nothing."""
    h = hf
    (r,) = requests_for(h, [f"legacyrenewed.{TLD}"])
    async with h.workers():
        await bring_to(h, "failed", [r])
        h.admin.configure(TLD, error_rate=0.0)
        legacy = await batch_row(h, r, "op-batch-renewed")
        robots = Robots(h.pool, h.registry, BillingLedger(h.pool),
                        RobotConfig(robots=1, poll_interval_s=0.05, drain=True))  # fmt: skip
        await robots.run()
        assert (await h.row(legacy["operation_id"]))["status"] == "done"
        before = await reset(h, "first", "failed", [r])
        await until_closed(h, before)
        result = await result_of(h, r)
        await save_history(h, r.idempotency_key, "reset_superseded_from_evidence")
    assert (result.status, result.from_evidence) == ("superseded", True)
    assert result.superseded_by == legacy["operation_id"] and result.refunded_cents
    row = await h.row(r.operation_id)
    assert (row["status"], row["superseded_by"]) == ("superseded", legacy["operation_id"])
    assert [e["client_tx_id"].startswith("legacy-") for e in h.admin.ledger(TLD)] == [True]
    assert await h.net_charges(r.operation_id, by="operation_id") == 0
    assert await h.net_charges(r.idempotency_key) == 1  # legacy's own charge
