"""A run of RenewDomain that meets a renewal already made decides from the evidence that carries
the key (DESIGN §3): ours is done with its original outcome; someone else's is refunded and ends
superseded or RenewedElsewhere; a renew refused after the charge refunds it. Never a generic
failure, never a second charge or renew."""

from __future__ import annotations

import datetime as dt

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError

from legacy_adapter import LegacyEngine
from renewals import operations
from renewals.billing import BillingLedger
from renewals.model import RenewalRequest, add_years
from temporal_flow.relaunch import reset
from temporal_flow.starter import renew_input, start_renewal
from temporal_flow.types import RunMode
from tests.harness import TODAY, Harness, save_history
from tests.integration.test_temporal_flow import stalled_in_charge

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=20)


async def net_charges(h: Harness, key: str) -> int:
    return await h.net_charges(key)


async def start(h: Harness, request: RenewalRequest) -> str:
    """Start the workflow of an operation row that already exists (a fresh relaunch does)."""
    inp = renew_input(request, RunMode.LIVE, h.settings)
    return (await start_renewal(h.client, h.settings.task_queue, inp)).workflow_id


async def test_a_fresh_run_of_a_renewal_already_made_is_done_from_evidence(h: Harness) -> None:
    """The history is gone, the registry renewed with our clTRID and we charged: the new run
    ends done with that renewal's expiry and transaction, charging and renewing nothing."""
    h.seed("fr", "again.fr", expiry=EXPIRY)
    request = h.request("again.fr", EXPIRY)
    async with h.pool.connection() as conn, conn.transaction():
        await h.engine.submit(conn, request)  # the row of a renewal whose run is gone
    made = await h.registry.renew("again.fr", EXPIRY, 1, request.idempotency_key)
    await BillingLedger(h.pool).charge(
        charge_key=request.idempotency_key,
        idempotency_key=request.idempotency_key,
        operation_id=request.operation_id,
        customer_id="cust-1",
        amount_cents=1099,
        currency="EUR",
    )
    async with h.workers():
        workflow_id = await start(h, request)
        result = await h.result(workflow_id)
        await save_history(h, workflow_id, "live_rerun_done_from_evidence")
    assert (result.status, result.from_evidence) == ("done", True)
    assert (result.new_expiry, result.registry_transaction_id) == (
        made.new_expiry.isoformat(),
        made.server_tx_id,
    )
    row = await h.row(request.operation_id)
    assert (row["status"], row["registry_transaction_id"]) == ("done", made.server_tx_id)
    assert row["charged_cents"] == 1099 and row["new_expiry"] == add_years(EXPIRY, 1)
    assert len(h.admin.ledger("fr", domain="again.fr")) == 1
    assert await net_charges(h, request.idempotency_key) == 1


async def test_a_period_renewed_elsewhere_is_refunded_and_not_retried(h: Harness) -> None:
    """Charged by an earlier run, then renewed by someone else: refunded, RenewedElsewhere."""
    h.seed("de", "elsewhere.de", expiry=EXPIRY)
    request = h.request("elsewhere.de", EXPIRY)
    await BillingLedger(h.pool).charge(
        charge_key=request.idempotency_key,
        idempotency_key=request.idempotency_key,
        operation_id=request.operation_id,
        customer_id="cust-1",
        amount_cents=799,
        currency="EUR",
    )
    await h.registry.renew("elsewhere.de", EXPIRY, 1, "another-registrar-tx")
    async with h.workers():
        started = await h.submit(request)
        with pytest.raises(WorkflowFailureError):
            await h.result(started.workflow_id)
        await save_history(h, started.workflow_id, "live_renewed_elsewhere_refunded")
    row = await h.row(request.operation_id)
    assert (row["status"], row["error_code"]) == ("failed", "RenewedElsewhere")
    assert await net_charges(h, request.idempotency_key) == 0
    assert len(h.admin.ledger("de", domain="elsewhere.de")) == 1


async def test_a_renew_refused_after_the_charge_is_refunded(h: Harness) -> None:
    """The registry refuses the renew itself (over ten years): the charge goes back."""
    far = TODAY + dt.timedelta(days=400)
    h.seed("eu", "toolong.eu", expiry=far)
    request = h.request("toolong.eu", far, years=10)
    async with h.workers():
        started = await h.submit(request)
        with pytest.raises(WorkflowFailureError):
            await h.result(started.workflow_id)
        await save_history(h, started.workflow_id, "live_renew_refused_refunded")
    row = await h.row(request.operation_id)
    assert (row["status"], row["error_code"]) == ("failed", "PolicyRefused")
    kinds = await h.query(
        "SELECT kind FROM billing_ledger WHERE idempotency_key = %s ORDER BY entry_id",
        request.idempotency_key,
    )
    assert [k["kind"] for k in kinds] == ["charge", "refund"]
    assert h.admin.ledger("eu", domain="toolong.eu") == []


@pytest.mark.parametrize("forced", [False, True], ids=["superseded-at-birth", "forced-row"])
async def test_a_renewal_legacy_has_is_superseded_before_any_side_effect(
    h: Harness, forced: bool
) -> None:
    """A legacy operation of the key is live: the Temporal run charges and renews nothing and
    ends superseded, pointing to it, whether the database superseded the row at birth or the
    row was forced in past the triggers."""
    domain = f"owned-{'forced' if forced else 'born'}.com"  # one workflow id per case
    h.seed("com", domain, expiry=EXPIRY)
    owner = h.request(domain, EXPIRY)
    await LegacyEngine(h.pool).create(owner)
    request = h.request(domain, EXPIRY)
    async with h.pool.connection() as conn, conn.transaction():
        if forced:
            await conn.execute("SET LOCAL session_replication_role = replica")
        created = await h.engine.submit(conn, request)
    assert created.status == ("todo" if forced else "superseded")
    async with h.workers():
        workflow_id = await start(h, request)
        result = await h.result(workflow_id)
        if not forced:
            await save_history(h, workflow_id, "live_superseded")
    assert (result.status, result.superseded_by) == ("superseded", owner.operation_id)
    row = await operations.get(h.pool, request.operation_id)
    assert (row.status, row.superseded_by) == ("superseded", owner.operation_id)
    assert await net_charges(h, request.idempotency_key) == 0
    assert h.admin.ledger("com", domain=domain) == []
    assert (await h.row(owner.operation_id))["status"] == "todo"


async def test_a_reset_while_the_renew_is_at_the_registry_renews_once(h: Harness) -> None:
    """Reset from the first task while the old run's renew is still in flight, on a lenient
    registry: the new run waits for it (the renew lease), finds it, and renews nothing again."""
    h.seed("info", "inflight.info", expiry=EXPIRY)
    h.admin.configure("info", strict=False)
    request = h.request("inflight.info", EXPIRY)
    async with h.workers():
        async with stalled_in_charge(h, request) as handle:
            h.admin.configure("info", latency_ms=2500)  # the old run's renew will take 2.5 s

        async def renewing() -> bool:
            progress = await handle.query("progress")
            return bool(progress["registry_started"])

        await h.wait_for(renewing)
        h.admin.configure("info", latency_ms=0)  # the new run's calls are quick
        history = await handle.fetch_history()
        first_task = next(
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        old_run = (await handle.describe()).run_id
        await reset(h.client, request.idempotency_key, old_run, first_task, "test-inflight")
        result = await h.result(request.idempotency_key, within=60)
    assert result.status == "done"
    assert len(h.admin.ledger("info", domain="inflight.info")) == 1
    assert await net_charges(h, request.idempotency_key) == 1
    assert (await h.row(request.operation_id))["status"] == "done"
