"""Driving Temporal resets of RenewDomain as an operator does (the real `temporal` CLI), and
proving each renewal ended done, renewed once and charged once net (test_resets.py and
test_reset_guard.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from dualrun.wiring import reconciler
from reconciler.model import Window
from renewals.model import RenewalRequest, add_years
from temporal_flow.workflows import RenewDomain
from tests.harness import TODAY, Harness

EXPIRY = TODAY + dt.timedelta(days=30)
RENEWED = add_years(EXPIRY, 1)
TLD = "fr"
TEMPORAL = Path(sys.executable).parent / "temporal"
FAST = {"DUALRUN_REGISTRY_TIMEOUT": "1"}  # a short renew lease (registry timeout + 5 s)
# Each starting state: the harness's settings, and how a reset leaves the run it replaces.
# failed: the registry down, the bound of 2 is spent; running: down, retried without end;
# committed-*: the same once the registry committed the renew and its answer was lost;
# in-flight: a lenient registry that is slow to commit the renew when the reset comes.
STATES: dict[str, tuple[dict[str, str], WorkflowExecutionStatus]] = {
    "done": (FAST, WorkflowExecutionStatus.COMPLETED),
    "failed": ({**FAST, "DUALRUN_REGISTRY_MAX_ATTEMPTS": "2"}, WorkflowExecutionStatus.FAILED),
    "running": ({**FAST, "DUALRUN_REGISTRY_MAX_ATTEMPTS": "0"}, WorkflowExecutionStatus.TERMINATED),
}
STATES["committed-failed"] = STATES["failed"]
STATES["committed-running"] = STATES["running"]
STATES["in-flight"] = (
    {"DUALRUN_REGISTRY_MAX_ATTEMPTS": "0", "DUALRUN_REGISTRY_TIMEOUT": "4"},
    WorkflowExecutionStatus.TERMINATED,
)
EXECUTION_STATUS = {"done": "Completed", "failed": "Failed", "running": "Running"}
RESET_TYPE = {"first": "FirstWorkflowTask", "last": "LastWorkflowTask"}
Runs = dict[str, str]  # workflow id -> run id


async def temporal_cli(h: Harness, *args: str) -> str:
    """Run the real `temporal` CLI against the dev server (in a thread: the workers go on)."""
    address = h.client.service_client.config.target_host
    cmd = [str(TEMPORAL), *args, "--address", address, "--namespace", "default"]
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} -> {done.returncode}: {done.stderr}"
    return done.stdout


async def current(h: Harness, workflow_id: str) -> tuple[str, WorkflowExecutionStatus | None]:
    """The workflow's current run: its id and status."""
    desc = await h.client.get_workflow_handle(workflow_id).describe()
    return desc.run_id, desc.status


async def runs(h: Harness, workflow_ids: Any) -> dict[str, tuple[str, Any]]:
    """Each workflow's current run: its id and status."""
    return {w: await current(h, w) for w in workflow_ids}


async def renew_task_event(h: Harness, workflow_id: str) -> int:
    """The WorkflowTaskCompleted event just before the registry_renew ActivityTaskScheduled."""
    history = await h.client.get_workflow_handle(workflow_id).fetch_history()
    completed = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            completed = event.event_id
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and (
            event.activity_task_scheduled_event_attributes.activity_type.name == "registry_renew"
        ):
            assert completed is not None
            return completed
    raise AssertionError(f"{workflow_id}: registry_renew was never scheduled")


RETRIED = "step = 'renew' AND event = 'step.failed' AND attempt >= 2"
DONE_BY = "event = 'workflow.done' AND detail->>'run_id' = %s"


async def has_event(h: Harness, r: RenewalRequest, where: str, *params: Any) -> bool:
    """The renewal's operation has an event matching `where`."""
    sql = f"SELECT 1 FROM operation_events WHERE operation_id = %s AND {where}"
    return bool(await h.query(sql, r.operation_id, *params))


async def bring_to(h: Harness, state: str, requests: list[RenewalRequest]) -> None:
    """Bring each renewal's workflow to `state` (see STATES)."""
    if state == "done":
        for r in requests:
            await h.submit(r)
        for r in requests:
            assert (await h.result(r.idempotency_key)).status == "done"
        return
    if state.startswith("committed-"):  # the renew commits, its answer outlives the timeout
        h.admin.configure(TLD, commit_timeout_rate=1.0, hold_s=2.0)
        for r in requests:
            await h.submit(r)

        async def all_committed() -> bool:
            return len(h.admin.ledger(TLD)) == len(requests)

        await h.wait_for(all_committed, within=30)
        h.admin.configure(TLD, commit_timeout_rate=0.0, error_rate=1.0)
    else:  # changed while the workflows are in their charge step: the renew meets it first
        async with await psycopg.AsyncConnection.connect(h.settings.dsn) as locker:
            await locker.execute("LOCK TABLE billing_ledger IN ACCESS EXCLUSIVE MODE")
            for r in requests:
                await h.submit(r)
            for r in requests:
                await h.wait_for(lambda r=r: stage_is(h, r, "charge"))
            if state == "in-flight":
                h.admin.configure(TLD, strict=False, latency_ms=2500)
            else:
                h.admin.configure(TLD, error_rate=1.0)
            calls = h.admin.traffic(TLD)["admitted"]
            await locker.rollback()
    if state == "in-flight":  # the renews reached the registry, which commits them in 2.5 s

        async def arrived() -> bool:
            return bool(h.admin.traffic(TLD)["admitted"] == calls + len(requests))

        await h.wait_for(arrived)
        h.admin.configure(TLD, latency_ms=0)  # only the renews in flight stay slow
    for r in requests:
        if state.endswith("running"):
            await h.wait_for(lambda r=r: has_event(h, r, RETRIED), within=30, every=0.1)
        elif state.endswith("failed"):
            await h.wait_for(lambda r=r: failed(h, r), within=30, every=0.1)
        row = await h.row(r.operation_id)
        failure = ("failed", "RegistryUnavailable") if state.endswith("failed") else ("doing", None)
        assert (row["status"], row["error_code"]) == failure
    committed = len(requests) if state.startswith("committed-") else 0
    assert len(h.admin.ledger(TLD)) == committed


async def stage_is(h: Harness, r: RenewalRequest, stage: str) -> bool:
    handle = h.client.get_workflow_handle(r.idempotency_key)
    return bool((await handle.query("progress"))["stage"] == stage)


async def failed(h: Harness, r: RenewalRequest) -> bool:
    return (await current(h, r.idempotency_key))[1] == WorkflowExecutionStatus.FAILED


async def reset(h: Harness, mode: str, state: str, requests: list[RenewalRequest]) -> Runs:
    """Reset every renewal's workflow by `mode`; poll until each has a new current run.
    Returns each workflow's original run id."""
    now = await runs(h, [r.idempotency_key for r in requests])
    before = {w: run for w, (run, _) in now.items()}
    if mode in ("batch", "operator"):
        query = f"ExecutionStatus='{EXECUTION_STATUS[state]}'"
        if mode == "batch":  # this test's queue, on the session's shared server
            query = (
                f"WorkflowType='RenewDomain' AND TaskQueue='{h.settings.task_queue}' AND {query}"
            )
        else:  # the operator's form (bulk-relaunch runbook), on a server of the test's own
            query = f"DualrunTld='{TLD}' AND {query}"
        reason = f"batch reset of {state} renewals"
        args = ["--query", query, "--type", "FirstWorkflowTask", "--reason", reason, "--yes"]
        out = await temporal_cli(h, "workflow", "reset", *args)
        assert "job" in out.lower(), out
    else:
        for wid in before:
            if mode == "event":
                target = ["--event-id", str(await renew_task_event(h, wid))]
            else:
                target = ["--type", RESET_TYPE[mode]]
            await temporal_cli(
                h, "workflow", "reset", "--workflow-id", wid, *target, "--reason", f"{mode} reset"
            )

    async def moved() -> bool:
        now = await runs(h, before)
        return all(now[w][0] != run for w, run in before.items())

    await h.wait_for(moved, within=60, every=0.2)
    return before


async def net_charges(h: Harness, key: str) -> int:
    return await h.net_charges(key, by="charge_key")


async def until_closed(h: Harness, workflow_ids: Any) -> None:
    async def closed() -> bool:
        now = (await runs(h, workflow_ids)).values()
        return all(status != WorkflowExecutionStatus.RUNNING for _, status in now)

    await h.wait_for(closed, within=60, every=0.2)


async def assert_done_once(
    h: Harness, state: str, requests: list[RenewalRequest], before: Runs, since: dt.datetime
) -> None:
    """Each renewal: a new, completed run (the original one as its state left it); the row
    done; one renewal; one net charge. Then a reconciliation of the window finds nothing."""
    for r in requests:
        wid = r.idempotency_key
        run_id, status = await current(h, wid)
        assert run_id != before[wid] and status == WorkflowExecutionStatus.COMPLETED, status
        original = await h.client.get_workflow_handle(wid, run_id=before[wid]).describe()
        assert original.status == STATES[state][1]
        handle = h.client.get_workflow_handle_for(RenewDomain.run, wid, run_id=run_id)
        result = await handle.result()
        assert (result.status, result.new_expiry) == ("done", RENEWED.isoformat())
        row = await h.row(r.operation_id)
        assert (row["status"], row["new_expiry"]) == ("done", RENEWED), row
        ledger = h.admin.ledger(TLD, domain=r.domain)
        assert [e["client_tx_id"] for e in ledger] == [wid], ledger
        assert row["registry_transaction_id"] == ledger[0]["server_tx_id"]
        assert result.registry_transaction_id == ledger[0]["server_tx_id"]
        assert (await h.registry.status(r.domain)).expiry == RENEWED
        assert await net_charges(h, wid) == 1
    window = Window(since, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    async with reconciler(h.settings) as rec:
        summary = await rec.run(window, "manual", wait=True)
    assert summary.unchecked == () and summary.operations == len(requests)
    assert summary.findings == {}, [f"{f.kind}: {f.summary} {f.evidence}" for f in summary.details]


def requests_for(h: Harness, names: list[str]) -> list[RenewalRequest]:
    h.seed(TLD, *names, expiry=EXPIRY)
    return [h.request(d, EXPIRY) for d in names]


async def reset_and_check(h: Harness, state: str, mode: str, names: list[str]) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    requests = requests_for(h, names)
    async with h.workers():
        await bring_to(h, state, requests)
        if state.endswith("failed"):
            h.admin.configure(TLD, error_rate=0.0)
        before = await reset(h, mode, state, requests)
        if state == "in-flight":
            assert h.admin.ledger(TLD) == [], "the renew committed before the reset"
        if state.endswith("running"):
            h.admin.configure(TLD, error_rate=0.0)
        await until_closed(h, before)
        for r in requests if state == "in-flight" else ():  # the old renew answered at last
            await h.wait_for(lambda r=r: has_event(h, r, DONE_BY, before[r.idempotency_key]))
        await assert_done_once(h, state, requests, before, since)
