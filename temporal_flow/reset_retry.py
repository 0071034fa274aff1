"""A reset run does not give up on a transient registry failure (workflow code, deterministic).

A Temporal reset to the last workflow task of a FAILED renewal (`temporal workflow reset
--type LastWorkflowTask`) keeps the run's history up to that task: the registry failure that
ended the run (unavailable, timed out, its bound of attempts spent) comes back from the
history, and the workflow, deciding that task again, would fail again on it. A reset is the
operator's request to finish the renewal: under the `dualrun-reset-retry` patch a reset run (its
run id is not the original execution's) meeting a transient registry failure calls the
registry again, and from then on with the unbounded registry policy (backing off to 30 s) rather
than the bound (`DUALRUN_REGISTRY_MAX_ATTEMPTS`): a reset made while the registry is still down
leaves a renewal retrying, as a running one does, until the registry answers. A renew called
again reads the registry first (verify-first), so a renew that did reach the registry is found
by our client transaction id, never sent twice. Refusals are not retried. Runs and resets
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


def _transient(exc: ActivityError) -> bool:
    return is_transient(error_type(exc)) or isinstance(exc.cause, TimeoutError)


class ResetRetry:
    """Whether this run calls the registry again after a transient failure, and how."""

    def __init__(self) -> None:
        self.granted = False

    def again(self, exc: BaseException, call: str) -> RetryPolicy | None:
        """The registry policy to call `call` again with after `exc`, or None: raise it."""
        if self.granted or not isinstance(exc, ActivityError) or not _transient(exc):
            return None  # granted once: the unbounded policy surfaces no transient failure
        info = workflow.info()
        if info.run_id == info.original_execution_run_id:  # not a reset run
            return None
        if not workflow.patched(RESET_RETRY):
            return None
        self.granted = True
        workflow.logger.warning(
            "renewal.reset_retry", extra={"call": call, "error": error_type(exc) or "timeout"}
        )
        return REGISTRY_RETRY
