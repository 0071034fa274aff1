"""`TemporalEngine`: the Engine port over Temporal (and the shadow planner).

The operation row is created with the idempotency key as its workflow id; after commit the
workflow is started under that id (a key that already has a run starts nothing). A cancel is the
workflow's `request_cancel` update, refused by the workflow once the registry step has begun. A
relaunch resets the last run to before its last failed activity, or starts afresh when the
history is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from renewals import operations
from renewals.engine import CancelResult, RelaunchItem, RelaunchPlan
from renewals.logs import redact_text
from renewals.model import Engine, Operation, OperationStatus, Origin, RenewalRequest
from renewals.settings import Settings
from temporal_flow import relaunch
from temporal_flow.ids import workflow_id
from temporal_flow.starter import in_aa_sample, renew_input, start_renewal
from temporal_flow.types import RunMode
from temporal_flow.workflows import RenewDomain

log = structlog.get_logger(__name__)

Connect = Callable[[], Awaitable[Client]]
CANCEL_ANSWER_S = 10.0  # a cancel waits this long for the workflow's answer


class TemporalEngine:
    kind = Engine.TEMPORAL

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, connect: Connect) -> None:
        self.pool = pool
        self.settings = settings
        self._connect = connect
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """Temporal, connected on first use (a process that only routes to legacy never is)."""
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()
            return self._client

    # -- submit and start ----------------------------------------------------------------------
    async def submit(
        self, conn: AsyncConnection[Any], request: RenewalRequest, origin: Origin = Origin.ROUTER
    ) -> Operation:
        return await operations.insert(
            conn, request, Engine.TEMPORAL, origin=origin, workflow_id=self.workflow_id(request)
        )

    def workflow_id(self, request: RenewalRequest) -> str | None:
        return workflow_id(request.idempotency_key, RunMode.LIVE)

    async def _start(self, request: RenewalRequest, mode: RunMode, plan: str = "a") -> str | None:
        try:
            client = await self.client()
            inp = renew_input(request, mode, self.settings)
            started = await start_renewal(client, self.settings.task_queue, inp, plan)
        except Exception as exc:  # any start failure: the row stays todo, reported, not lost
            return redact_text(f"{type(exc).__name__}: {exc}", self.settings.secrets())
        log.info(
            "temporal.started",
            operation_id=request.operation_id,
            workflow_id=started.workflow_id,
            run_mode=mode.value,
            existing=started.existing,
        )
        return None

    async def start(self, request: RenewalRequest) -> str | None:
        return await self._start(request, RunMode.LIVE)

    async def plan(self, request: RenewalRequest) -> str | None:
        """The shadow plan of a legacy renewal (Planner); for the A/A sample
        (DUALRUN_SHADOW_AA_SHARE) a second, independent plan: the comparator's noise."""
        error = await self._start(request, RunMode.SHADOW)
        if error is None and in_aa_sample(request.idempotency_key, self.settings.shadow_aa_share):
            error = await self._start(request, RunMode.SHADOW, plan="b")
        return error

    # -- cancel --------------------------------------------------------------------------------
    async def cancel(self, operation: Operation, reason: str) -> CancelResult:
        op = operation.operation_id
        if operation.status.terminal:
            message = f"the renewal is already {operation.status.value}"
            return CancelResult(op, Engine.TEMPORAL, False, operation.status.value, message)
        client = await self.client()
        handle = client.get_workflow_handle(operation.workflow_id or operation.idempotency_key)
        try:
            await handle.execute_update(
                RenewDomain.request_cancel, reason, rpc_timeout=timedelta(seconds=CANCEL_ANSWER_S)
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError:  # no worker took it: the row's flag is
            # honoured instead, before each side effect
            async with self.pool.connection() as conn:
                await operations.flag_cancel(conn, op, {"via": "flag", "reason": reason})
            log.warning("temporal.cancel.flagged", operation_id=op, waited_s=CANCEL_ANSWER_S)
            message = (
                f"no worker answered within {CANCEL_ANSWER_S:.0f} s: the cancel is flagged in "
                "the database; the renewal stops before its next charge or registry renew, "
                "unless it has reached the registry already"
            )
            return CancelResult(op, Engine.TEMPORAL, True, operation.status.value, message)
        except WorkflowUpdateFailedError as exc:
            message = f"refused by the workflow: {_cause(exc)}"
            log.info("temporal.cancel.refused", operation_id=op, reason=message)
            return CancelResult(op, Engine.TEMPORAL, False, operation.status.value, message)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return await self._cancel_without_workflow(operation, client)
        async with self.pool.connection() as conn:
            await operations.flag_cancel(conn, op, {"via": "request_cancel", "reason": reason})
        log.info("temporal.cancel.accepted", operation_id=op)
        message = "cancel accepted: no further side effect starts; a charge made is refunded"
        return CancelResult(op, Engine.TEMPORAL, True, operation.status.value, message)

    async def _cancel_without_workflow(self, operation: Operation, client: Client) -> CancelResult:
        """No running workflow: never started (a failed start: cancel the row itself), or
        finished meanwhile (say how)."""
        op = operation.operation_id
        started = await relaunch.current_run(client, operation.workflow_id or "") is not None
        if not started:
            async with self.pool.connection() as conn, conn.transaction():
                row = await operations.lock(conn, op)
                if row.status == OperationStatus.TODO:
                    await operations.flag_cancel(
                        conn, op, {"via": "router", "workflow": "never started"}, now_final=True
                    )
                    log.info("temporal.cancel.accepted", operation_id=op, workflow="none")
                    message = "cancelled (its workflow never started)"
                    return CancelResult(op, Engine.TEMPORAL, True, "cancelled", message)
        current = await operations.get(self.pool, op)
        message = f"the workflow has finished; the renewal is {current.status.value}"
        return CancelResult(op, Engine.TEMPORAL, False, current.status.value, message)

    # -- relaunch ------------------------------------------------------------------------------
    async def relaunch_plan(self, item: RelaunchItem) -> RelaunchPlan:
        planned = await relaunch.plan(await self.client(), _workflow_of(item.operation))
        detail = {
            "action": planned.action,
            "from_run_id": planned.run_id,
            "reset_event_id": planned.reset_event_id,
            "activity": planned.activity,
        }
        return RelaunchPlan(planned.action, planned.reason, reopen=True, detail=detail)

    async def relaunch_sent(self, item: RelaunchItem) -> str | None:
        if item.prepared_at is None:
            return None
        current = await relaunch.current_run(await self.client(), _workflow_of(item.operation))
        return current if current is not None and current != item.from_run_id else None

    async def relaunch(self, item: RelaunchItem, plan: RelaunchPlan, request_id: str) -> str:
        """Reset (the request id makes a repeat harmless) or start afresh; the new run id. When
        the send fails, the workflow's current run says whether it reached Temporal."""
        client = await self.client()
        wid = _workflow_of(item.operation)
        from_run = plan.detail.get("from_run_id")
        try:
            if plan.action == "reset":
                return await relaunch.reset(
                    client, wid, from_run, plan.detail["reset_event_id"], request_id
                )
            started = await relaunch.start_fresh(client, self.settings, item.operation.request)
        except relaunch.AlreadyStarted:
            raise
        except Exception:
            current = await relaunch.current_run(client, wid)
            if current is None or current == from_run:
                raise
            return current
        if started.existing:  # the key already has a run (a race with another starter)
            raise relaunch.AlreadyStarted(wid, started.run_id)
        return started.run_id or ""

    # -- describe ------------------------------------------------------------------------------
    async def describe(self, operation: Operation) -> dict[str, Any]:
        wid = _workflow_of(operation)
        out: dict[str, Any] = {"workflow_id": wid, "run_id": operation.run_id}
        try:
            desc = await (await self.client()).get_workflow_handle(wid).describe()
        except RPCError as exc:
            out["workflow_status"] = "NOT_FOUND" if exc.status == RPCStatusCode.NOT_FOUND else None
            return out
        except Exception as exc:  # Temporal unreachable: the row still answers
            log.warning("temporal.describe.failed", error=type(exc).__name__)
            out["workflow_status"] = None
            return out
        out["run_id"] = desc.run_id
        out["workflow_status"] = desc.status.name if desc.status else None
        return out


def _workflow_of(operation: Operation) -> str:
    return operation.workflow_id or workflow_id(operation.idempotency_key, RunMode.LIVE)


def _cause(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    return str(cause or exc)
