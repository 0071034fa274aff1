"""A transient registry failure decided again does not fail the renewal again (workflow code).

A Temporal reset to the last workflow task of a FAILED renewal (`temporal workflow reset
--type LastWorkflowTask`) keeps the run's history up to that task: the registry failure that
ended the run (unavailable, timed out, its bound of attempts spent) comes back from the
history, and the workflow, deciding that task again, would fail again on it. A reset is the
operator's request to finish the renewal: under the `dualrun-reset-retry` patch a transient
registry failure that is being decided again calls the registry again, and from then on with
the unbounded registry policy (backing off to 30 s) rather than the bound
(`DUALRUN_REGISTRY_MAX_ATTEMPTS`): a reset made while the registry is still down leaves a
renewal retrying, as a running one does, until the registry answers. A renew called again reads
the registry first (verify-first), so a renew that did reach the registry is found by our client
transaction id, never sent twice. Refusals are not retried.

"Decided again" is read from the history alone, so that a replay decides the same (the run id
is no help: a replay of a saved history has the original run's): between the failure and the
task deciding it, a task was started and never completed: failed (the reset's own task failure)
or timed out (a worker lost while deciding it, which calling again also suits). Runs and resets
recorded before the patch replay the older path (the failure is raised again).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from renewals.outcomes import is_transient
    from temporal_flow.policies import REGISTRY_RETRY, error_type

RESET_RETRY = "dualrun-reset-retry"
# After a failure event F a task deciding it at once starts at F+2 (scheduled, started); one
# decided again at F+5 or later (scheduled, started, failed or timed out, scheduled, started).
_DECIDED_AGAIN = 5


def _transient(exc: ActivityError) -> bool:
    return is_transient(error_type(exc)) or isinstance(exc.cause, TimeoutError)


def _decided_again(exc: ActivityError) -> bool:
    failed_at = max(exc.scheduled_event_id, exc.started_event_id) + 1
    return workflow.info().get_current_history_length() - failed_at >= _DECIDED_AGAIN


class ResetRetry:
    """Whether this run calls the registry again after a transient failure, and how."""

    def __init__(self) -> None:
        self.granted = False

    def again(self, exc: BaseException, call: str) -> RetryPolicy | None:
        """The registry policy to call `call` again with after `exc`, or None: raise it."""
        if self.granted or not isinstance(exc, ActivityError) or not _transient(exc):
            return None  # granted once: the unbounded policy surfaces no transient failure
        if not _decided_again(exc) or not workflow.patched(RESET_RETRY):
            return None
        self.granted = True
        workflow.logger.warning(
            "renewal.reset_retry", extra={"call": call, "error": error_type(exc) or "timeout"}
        )
        return REGISTRY_RETRY
