"""Relaunch one renewal workflow: reset it to before its last failed activity, or start afresh.

The registrar's "reset before the last activity": ResetWorkflowExecution to the
WorkflowTaskCompleted event just before the ActivityTaskScheduled of the last activity that did
not complete. The new run keeps the workflow id (the idempotency key), takes every completed step
from history (a charge already made is not made again) and schedules the failed one anew; a reset
run's registry renew reads the registry first (`verify_first`), so a renewal that already happened
is recognised, never repeated. When the history is gone (retention, deletion) the renewal starts
afresh under the same key, where the workflow's own status check protects the period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from renewals.errors import DualrunError
from renewals.model import RenewalRequest
from renewals.settings import Settings
from temporal_flow.starter import Started, renew_input, start_renewal
from temporal_flow.types import RunMode

Action = Literal["reset", "fresh", "skip"]


class AlreadyStarted(DualrunError):
    """A fresh start found the key already taken (REJECT_DUPLICATE): nothing was started."""

    def __init__(self, workflow_id: str, run_id: str | None) -> None:
        super().__init__(f"workflow {workflow_id} exists (run {run_id}): not started again")
        self.workflow_id = workflow_id
        self.run_id = run_id


@dataclass(frozen=True)
class ResetPoint:
    event_id: int  # the WorkflowTaskCompleted event to reset to
    activity: str | None  # the activity scheduled right after it (None: from the start)


@dataclass(frozen=True)
class Plan:
    """What relaunching one workflow means now (read-only to find out)."""

    action: Action
    workflow_id: str
    run_id: str | None = None  # the run a reset starts from
    reset_event_id: int | None = None
    activity: str | None = None
    reason: str | None = None  # why it is skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "reset_event_id": self.reset_event_id,
            "activity": self.activity,
            "reason": self.reason,
        }


def reset_point(events: Iterable[HistoryEvent]) -> ResetPoint | None:
    """The WorkflowTaskCompleted just before the last activity scheduled and not completed;
    without one (the workflow failed in its own code), the first WorkflowTaskCompleted."""
    first: int | None = None
    last_completed_task: int | None = None
    open_activities: dict[int, ResetPoint] = {}  # scheduled event id -> where to reset
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_completed_task = event.event_id
            first = event.event_id if first is None else first
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and last_completed_task:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            open_activities[event.event_id] = ResetPoint(last_completed_task, name)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            open_activities.pop(scheduled, None)
    if open_activities:  # failed, timed out, cancelled or still pending: the last one
        return open_activities[max(open_activities)]
    return ResetPoint(first, None) if first is not None else None


async def current_run(client: Client, workflow_id: str) -> str | None:
    """The run id of the workflow's current run; None when Temporal has no such workflow."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return desc.run_id


async def plan(client: Client, workflow_id: str) -> Plan:
    """Reset (and to which event), fresh start, or skip (and why): reads, changes nothing."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return Plan("fresh", workflow_id)
        raise
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        return Plan("skip", workflow_id, desc.run_id, reason="workflow completed (row out of step)")
    if desc.status == WorkflowExecutionStatus.RUNNING:
        for pending in desc.raw_description.pending_activities:
            in_flight = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            if in_flight and pending.activity_type.name == "registry_renew":
                return Plan("skip", workflow_id, desc.run_id, reason="registry renew in flight")
    history = await client.get_workflow_handle(workflow_id, run_id=desc.run_id).fetch_history()
    point = reset_point(history.events)
    if point is None:
        return Plan("skip", workflow_id, desc.run_id, reason="no workflow task to reset to")
    return Plan("reset", workflow_id, desc.run_id, point.event_id, point.activity)


async def reset(
    client: Client, workflow_id: str, run_id: str | None, event_id: int, request_id: str
) -> str:
    """Reset the run to the WorkflowTaskCompleted `event_id`; the same request id never resets
    twice. Returns the new run's id."""
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
            reason=f"dualrun relaunch ({request_id})",
            workflow_task_finish_event_id=event_id,
            request_id=request_id,
            identity=client.identity,
        )
    )
    return response.run_id


async def start_fresh(client: Client, settings: Settings, request: RenewalRequest) -> Started:
    """A new run under the same key (the history is gone); `existing`: the key has one."""
    return await start_renewal(
        client, settings.task_queue, renew_input(request, RunMode.LIVE, settings)
    )
