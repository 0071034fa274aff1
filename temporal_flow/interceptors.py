"""The registrar's three interceptors: database sync, cancellation, and per-provider queues.

- DatabaseSyncInterceptor: the operation row follows the workflow (`doing` as its first step
  starts, the current step as activities start and finish, the terminal status and outcome at
  the end). Writes happen in the activity worker, one statement each; the end of the registry
  renew records `done` with the outcome. A workflow ending without a renew (failed,
  cancelled) records its ending through a local activity.
- CancellationInterceptor: once a cancel is requested (update/signal, Temporal cancel, or the
  tasks service's flag in the database) no further side effect starts; the workflow refunds.
  Nor does one while another engine's operation has the renewal: the workflow refunds and
  ends superseded.
- ActivityQueueInterceptor: registry calls go to `registry-{tld}`, served by workers that hold the
  provider's rate and concurrency limits, whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

with workflow.unsafe.imports_passed_through():
    from psycopg_pool import AsyncConnectionPool

    from renewals import operations
    from renewals.domains import tld_of
    from renewals.model import OperationStatus, Step
    from renewals.outcomes import CANCEL_REQUESTED, SUPERSEDED
    from renewals.queues import registry_queue
    from temporal_flow.activities import REGISTRY_ACTIVITIES, RenewalActivities
    from temporal_flow.ids import is_shadow
    from temporal_flow.types import (
        RegistryRenewResult,
        RenewInput,
        RenewResult,
        RunMode,
        SyncInput,
    )

STEP_OF_ACTIVITY = {
    "registry_status": Step.STATUS,
    "registry_price": Step.PRICE,
    "billing_charge": Step.CHARGE,
    "registry_renew": Step.RENEW,
}
SIDE_EFFECTS = frozenset({"billing_charge", "registry_renew"})
# The gate as the step's start read it (same statement): the cancellation interceptor, inner to
# the sync one, uses it instead of reading the row again. Set for one activity execution.
_GATE_AT_START: ContextVar[tuple[str, operations.Gate] | None] = ContextVar(
    "dualrun_gate_at_start", default=None
)


def _error_code(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            return cause.type
        cause = cause.__cause__
    return type(exc).__name__


# -- database sync ---------------------------------------------------------------------------
# Under this patch the activity worker writes the row's start and its `done`: the first step
# marks it `doing`, the registry renew records the outcome (DESIGN §3 step 5). The workflow's
# own writes (a local activity each, the costliest part of the sync) are left for the endings
# without a renew: failed, cancelled. Runs started before the patch replay the older path
# (tests/histories/v1_*); once none is open, `workflow.deprecate_patch` it and drop that path.
SYNC_IN_ACTIVITIES = "dualrun-sync-in-activities"


class _SyncWorkflowInbound(WorkflowInboundInterceptor):
    async def _sync(self, inp: SyncInput) -> None:
        await workflow.execute_local_activity_method(
            RenewalActivities.sync_operation, inp, start_to_close_timeout=timedelta(seconds=15)
        )

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        renewal = input.args[0] if input.args else None
        if not isinstance(renewal, RenewInput) or renewal.mode == RunMode.SHADOW:
            return await super().execute_workflow(input)  # a plan owns no operation row
        info = workflow.info()
        op, wid, rid = renewal.operation_id, info.workflow_id, info.run_id
        in_activities = workflow.patched(SYNC_IN_ACTIVITIES)
        if not in_activities:
            await self._sync(SyncInput(op, "doing", wid, rid))
        try:
            result = await super().execute_workflow(input)
        except asyncio.CancelledError:
            await self._sync(SyncInput(op, "cancelled", wid, rid))
            raise
        except FailureError as exc:  # the workflow fails: the row says so, with why
            await self._sync(
                SyncInput(
                    op, "failed", wid, rid, error_code=_error_code(exc), error_message=str(exc)
                )
            )
            raise
        # The renew activity recorded `done` (its interceptor), unless no renew ran: a rerun
        # that found its renewal already done from the evidence.
        recorded = (
            in_activities
            and getattr(result, "status", None) == "done"
            and not getattr(result, "from_evidence", False)
        )
        if isinstance(result, RenewResult) and not recorded:
            await self._sync(SyncInput(op, result.status, wid, rid, result=result))
        return result


class _StepSyncActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, pool: AsyncConnectionPool) -> None:
        super().__init__(next)
        self.pool = pool

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        step = STEP_OF_ACTIVITY.get(info.activity_type)
        operation_id = getattr(input.args[0], "operation_id", None) if input.args else None
        if step is None or operation_id is None or is_shadow(info.workflow_id):
            return await super().execute_activity(input)
        wid, rid = info.workflow_id or "", info.workflow_run_id or ""
        at = operations.StepOf(operation_id, step, info.attempt, wid, rid)
        gate = await operations.step_started(self.pool, at)
        if gate.status == OperationStatus.FAILED:  # a reset run: back to work, key taken back
            gate = await operations.rerun(self.pool, operation_id, wid, rid)
            if gate.status != OperationStatus.FAILED:
                gate = await operations.step_started(self.pool, at)
        token = _GATE_AT_START.set((operation_id, gate))
        try:
            result = await super().execute_activity(input)
        except BaseException as exc:
            await operations.step_finished(self.pool, at, _error_code(exc))
            raise
        finally:
            _GATE_AT_START.reset(token)
        if isinstance(result, RegistryRenewResult):  # the registry renewed: record the outcome
            await operations.record_renewal(
                self.pool,
                at,
                result.new_expiry,
                result.server_tx_id,
                from_registry_record=result.resolved_by_status,
            )
        else:
            await operations.step_finished(self.pool, at, None)
        return result


class DatabaseSyncInterceptor(Interceptor):
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepSyncActivityInbound(next, self.pool)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _SyncWorkflowInbound


# -- cancellation ----------------------------------------------------------------------------
class _CancelOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        if input.activity in SIDE_EFFECTS and getattr(
            workflow.instance(), "cancel_requested", False
        ):
            raise ApplicationError(
                f"cancel requested: {input.activity} not started",
                type=CANCEL_REQUESTED,
                non_retryable=True,
            )
        return super().start_activity(input)


class _CancelWorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_CancelOutbound(outbound))


class _GateActivityInbound(ActivityInboundInterceptor):
    """Before each side effect, the row says whether it may run: not once the tasks service
    flagged a cancel, not while another engine's operation has the renewal (DESIGN §3: the
    renewal ends superseded, pointing to it). One read per side effect: the one the sync
    interceptor's step start made in its own statement, or a read of its own without it."""

    def __init__(self, next: ActivityInboundInterceptor, pool: AsyncConnectionPool) -> None:
        super().__init__(next)
        self.pool = pool

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        arg = input.args[0] if input.args else None
        operation_id = getattr(arg, "operation_id", None)
        # A renew retried, or a rerun's, may have reached the registry: it resolves from the
        # registry's record instead (too late to cancel, nothing to supersede).
        may_have_renewed = info.activity_type == "registry_renew" and (
            info.attempt > 1 or bool(getattr(arg, "verify_first", False))
        )
        if (
            info.activity_type not in SIDE_EFFECTS
            or may_have_renewed
            or operation_id is None
            or is_shadow(info.workflow_id)
        ):
            return await super().execute_activity(input)
        read = _GATE_AT_START.get()
        if read is not None and read[0] == operation_id:
            gate = read[1]  # read with the step's start, a moment ago
        else:
            gate = await operations.gate(self.pool, operation_id)
        if gate.cancel_requested:
            raise ApplicationError(
                f"cancel flagged in the database: {info.activity_type} not run",
                type=CANCEL_REQUESTED,
                non_retryable=True,
            )
        if gate.superseded_by is not None:
            raise ApplicationError(
                f"{gate.superseded_by} (another engine) has this renewal: "
                f"{info.activity_type} not run",
                gate.superseded_by,
                type=SUPERSEDED,
                non_retryable=True,
            )
        return await super().execute_activity(input)


class CancellationInterceptor(Interceptor):
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _GateActivityInbound(next, self.pool)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _CancelWorkflowInbound


# -- per-provider activity queues ------------------------------------------------------------
class _QueueOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        domain = getattr(input.args[0], "domain", None) if input.args else None
        if input.activity in REGISTRY_ACTIVITIES and isinstance(domain, str):
            queue = registry_queue(tld_of(domain), workflow.info().task_queue)
            input = dataclasses.replace(input, task_queue=queue)
        return super().start_activity(input)


class _QueueWorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_QueueOutbound(outbound))


class ActivityQueueInterceptor(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _QueueWorkflowInbound


INTERCEPTORS = ("sync", "cancel", "queues")


def all_interceptors(
    pool: AsyncConnectionPool, only: frozenset[str] | None = None
) -> list[Interceptor]:
    """The workflow worker's interceptors, outermost first; `only` keeps a subset of
    INTERCEPTORS (the benchmark's decomposition of their cost)."""
    made: dict[str, Interceptor] = {
        "sync": DatabaseSyncInterceptor(pool),
        "cancel": CancellationInterceptor(pool),
        "queues": ActivityQueueInterceptor(),
    }
    return [made[name] for name in INTERCEPTORS if only is None or name in only]


def registry_interceptors(
    pool: AsyncConnectionPool, only: frozenset[str] | None = None
) -> list[Interceptor]:
    """A registry queue's worker runs activities only: the activity-side interceptors."""
    return [i for i in all_interceptors(pool, only) if not isinstance(i, ActivityQueueInterceptor)]
