"""RenewDomain on the real Temporal dev server, real PostgreSQL and the registry simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from temporalio.client import WorkflowUpdateFailedError

from renewals.model import RenewalRequest, add_years
from temporal_flow.starter import renew_input, start_renewal
from temporal_flow.types import RunMode
from tests.harness import TODAY, Harness, harness, save_history

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=20)


async def test_happy_path_row_follows_the_workflow(h: Harness) -> None:
    """The row goes doing → each step → done with the outcome; one renewal, one charge."""
    h.seed("fr", "happy.fr", expiry=EXPIRY)
    request = h.request("happy.fr", EXPIRY, years=2)
    async with h.workers():
        started = await h.submit(request)
        result = await h.result(started.workflow_id)
        await save_history(h, started.workflow_id, "live_done")
    assert started.workflow_id == request.idempotency_key and not started.existing
    assert result.status == "done"
    row = await h.row(request.operation_id)
    assert row["status"] == "done" and row["step"] == "record"
    assert row["new_expiry"] == add_years(EXPIRY, 2)
    assert row["charged_cents"] and row["charged_cents"] > 0
    assert row["registry_transaction_id"] and row["finished_at"] and row["started_at"]
    events = await h.query(
        "SELECT step, event FROM operation_events WHERE operation_id = %s ORDER BY event_id",
        request.operation_id,
    )
    flow = [(e["step"], e["event"]) for e in events]
    assert flow[:2] == [(None, "created"), (None, "workflow.doing")]
    assert [s for s, ev in flow if ev == "step.finished"] == ["status", "price", "charge", "renew"]
    assert flow[-1] == (None, "workflow.done")
    ledger = h.admin.ledger("fr", domain="happy.fr")
    assert len(ledger) == 1 and ledger[0]["client_tx_id"] == request.idempotency_key
    charges = await h.query(
        "SELECT * FROM billing_ledger WHERE idempotency_key = %s", request.idempotency_key
    )
    assert [c["kind"] for c in charges] == ["charge"]
    assert charges[0]["charge_key"] == request.idempotency_key


async def test_same_renewal_started_twice_runs_once(h: Harness) -> None:
    """Concurrent starts and a start after completion: one run, one renewal, one charge."""
    h.seed("info", "twice.info", expiry=EXPIRY)
    request = h.request("twice.info", EXPIRY)
    inp = renew_input(request, RunMode.LIVE, h.settings)
    async with h.workers():
        first = await h.submit(request)
        concurrent = await asyncio.gather(
            *(start_renewal(h.client, h.settings.task_queue, inp) for _ in range(5))
        )
        await h.result(first.workflow_id)
        after = await start_renewal(h.client, h.settings.task_queue, inp)
    assert {s.run_id for s in concurrent} == {first.run_id}
    assert all(s.existing for s in concurrent)
    assert after.existing and after.run_id == first.run_id
    assert len(h.admin.ledger("info", domain="twice.info")) == 1
    charges = await h.query(
        "SELECT count(*) AS n FROM billing_ledger WHERE idempotency_key = %s",
        request.idempotency_key,
    )
    assert charges[0]["n"] == 1


async def test_commit_then_timeout_is_resolved_by_reading_the_registry(h: Harness) -> None:
    """The registry commits then never answers: resolved as success, exactly one renewal."""
    h.seed("de", "ambiguous.de", expiry=EXPIRY)
    h.admin.configure("de", commit_timeout_rate=1.0, hold_s=8.0)
    request = h.request("ambiguous.de", EXPIRY)
    async with h.workers():
        started = await h.submit(request)
        result = await h.result(started.workflow_id)
        await save_history(h, started.workflow_id, "live_ambiguous_resolved")
    assert result.status == "done" and result.resolved_by_status
    assert result.new_expiry == add_years(EXPIRY, 1).isoformat()
    assert len(h.admin.ledger("de", domain="ambiguous.de")) == 1
    assert (await h.row(request.operation_id))["status"] == "done"


async def test_business_refusal_fails_without_charging(h: Harness) -> None:
    """A renew-prohibited domain fails at once (non-retryable): no charge, no renewal."""
    h.seed("eu", "locked.eu", expiry=EXPIRY, statuses=["clientRenewProhibited"])
    request = h.request("locked.eu", EXPIRY)
    async with h.workers():
        started = await h.submit(request)
        with pytest.raises(Exception):  # noqa: B017 - WorkflowFailureError
            await h.result(started.workflow_id)
        await save_history(h, started.workflow_id, "live_failed_prohibited")
    row = await h.row(request.operation_id)
    assert row["status"] == "failed" and row["error_code"] == "RenewProhibited"
    assert not await h.query(
        "SELECT 1 FROM billing_ledger WHERE operation_id = %s", request.operation_id
    )
    assert h.admin.ledger("eu", domain="locked.eu") == []


@asynccontextmanager
async def stalled_in_charge(h: Harness, request: RenewalRequest) -> AsyncIterator[Any]:
    """Start the renewal while the billing table is locked: it waits in its charge step.

    Yields the workflow handle once the workflow is in the charge step; leaving the block
    releases the lock, so the charge commits and the workflow goes on.
    """
    async with await psycopg.AsyncConnection.connect(h.settings.dsn) as locker:
        await locker.execute("LOCK TABLE billing_ledger IN ACCESS EXCLUSIVE MODE")
        started = await h.submit(request)
        handle = h.client.get_workflow_handle(started.workflow_id)

        async def charging() -> bool:
            """The charge runs: past its gate, waiting on the lock (not merely scheduled)."""
            if (await handle.query("progress"))["stage"] != "charge":
                return False
            waiting = await h.query(
                "SELECT count(*) AS n FROM pg_locks"
                " WHERE relation = 'billing_ledger'::regclass AND NOT granted"
            )
            return bool(waiting[0]["n"])

        await h.wait_for(charging)
        yield handle
        await locker.rollback()


async def test_cancel_after_charge_before_registry_refunds(h: Harness) -> None:
    """A cancel accepted while the charge runs: no renew starts, the charge is refunded."""
    h.seed("fr", "cancel-me.fr", expiry=EXPIRY)
    request = h.request("cancel-me.fr", EXPIRY)
    async with h.workers():
        async with stalled_in_charge(h, request) as handle:
            assert await handle.execute_update("request_cancel", "customer asked") == "accepted"
        result = await h.result(handle.id)
        await save_history(h, handle.id, "live_cancelled_refunded")
    assert result.status == "cancelled" and result.refunded_cents and result.refunded_cents > 0
    row = await h.row(request.operation_id)
    assert row["status"] == "cancelled" and row["refunded_cents"] == result.refunded_cents
    kinds = await h.query(
        "SELECT kind FROM billing_ledger WHERE idempotency_key = %s ORDER BY 1",
        request.idempotency_key,
    )
    assert [k["kind"] for k in kinds] == ["charge", "refund"]
    assert h.admin.ledger("fr", domain="cancel-me.fr") == []


async def test_cancel_flag_in_database_stops_before_the_registry(h: Harness) -> None:
    """The tasks service flags the row: the renew never starts and the charge is refunded."""
    h.seed("fr", "flagged.fr", expiry=EXPIRY)
    request = h.request("flagged.fr", EXPIRY)
    async with h.workers():
        async with stalled_in_charge(h, request) as handle:
            await h.query(
                "UPDATE operations SET cancel_requested_at = now() WHERE operation_id = %s"
                " RETURNING 1",
                request.operation_id,
            )
        result = await h.result(handle.id)
    assert result.status == "cancelled" and result.refunded_cents
    assert (await h.row(request.operation_id))["status"] == "cancelled"
    assert h.admin.ledger("fr", domain="flagged.fr") == []


async def test_cancel_after_the_registry_step_is_refused(h: Harness) -> None:
    """Once the renew has begun a cancel is refused and the renewal completes."""
    h.seed("com", "late.com", expiry=EXPIRY)
    h.admin.configure("com", latency_ms=1500)
    request = h.request("late.com", EXPIRY)
    async with h.workers():
        started = await h.submit(request)
        handle = h.client.get_workflow_handle(started.workflow_id)

        async def renewing() -> bool:
            return bool((await handle.query("progress"))["registry_started"])

        await h.wait_for(renewing, within=30)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("request_cancel", "too late")
        result = await h.result(started.workflow_id)
    assert result.status == "done"
    assert len(h.admin.ledger("com", domain="late.com")) == 1


async def test_years_correction_only_before_the_charge(h: Harness) -> None:
    """correct_years is accepted before the charge (and used), refused after it."""
    h.seed("info", "fix.info", expiry=EXPIRY)
    h.admin.configure("info", latency_ms=1000)
    request = h.request("fix.info", EXPIRY, years=1)
    async with h.workers():
        started = await h.submit(request)
        handle = h.client.get_workflow_handle(started.workflow_id)
        assert await handle.execute_update("correct_years", 3) == 3
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("correct_years", 11)

        async def charged() -> bool:
            return bool((await handle.query("progress"))["registry_started"])

        await h.wait_for(charged)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("correct_years", 2)
        result = await h.result(started.workflow_id)
        await save_history(h, started.workflow_id, "live_years_corrected")
    assert result.years == 3 and result.new_expiry == add_years(EXPIRY, 3).isoformat()
    assert h.admin.ledger("info", domain="fix.info")[0]["years"] == 3


async def test_shadow_plan_records_and_never_charges_or_renews(h: Harness) -> None:
    """A shadow run records its plan, with its own workflow id, and has no side effect."""
    h.seed("info", "shadow.info", "refused.info", expiry=EXPIRY)
    plans = []
    async with h.workers():
        for domain, expiry in (("shadow.info", EXPIRY), ("refused.info", EXPIRY - dt.timedelta(1))):
            request = h.request(domain, expiry, years=2)
            inp = renew_input(request, RunMode.SHADOW, h.settings)
            started = await start_renewal(h.client, h.settings.task_queue, inp)
            assert started.workflow_id == f"shadow:{request.idempotency_key}"
            plans.append((request, await h.result(started.workflow_id)))
            await save_history(h, started.workflow_id, f"shadow_{domain.split('.')[0]}")
    rows = {r["domain"]: r for r in await h.query("SELECT * FROM shadow_plans")}
    assert rows["shadow.info"]["verdict"] == "would_renew"
    assert rows["shadow.info"]["expected_new_expiry"] == add_years(EXPIRY, 2)
    assert rows["shadow.info"]["would_charge_cents"] > 0
    assert rows["refused.info"]["verdict"] == "would_refuse"
    assert rows["refused.info"]["refusal"] == "ExpiryMismatch"
    assert all(result.status == "planned" for _, result in plans)
    assert not await h.query("SELECT 1 FROM billing_ledger")
    assert h.admin.ledger("info") == []


async def test_workflow_cache_setting_reaches_the_renewal_worker(
    temporal_env: Any, db_dsn: str, sim: Any
) -> None:
    """DUALRUN_WORKFLOW_CACHE is the renewal queue's workflow cache, not the SDK's 1,000: a
    month start keeps thousands of runs open, and a run pushed out replays its history."""
    async with (
        harness(temporal_env.client, db_dsn, sim.url, DUALRUN_WORKFLOW_CACHE="12000") as built,
        built.workers(queues=("main",)) as workers,
    ):
        assert [w.config()["max_cached_workflows"] for w in workers] == [12000]
