"""Names the Temporal side and its readers share: the workflow type and the task queues.

Registry calls go to one queue per provider, `registry-<tld>` next to the default `renewals`
queue, `<queue>/registry-<tld>` next to any other (so several deployments, or test runs, can
share a namespace without sharing providers).
"""

from __future__ import annotations

WORKFLOW_TYPE = "RenewDomain"
DEFAULT_TASK_QUEUE = "renewals"


def registry_queue(tld: str, task_queue: str = DEFAULT_TASK_QUEUE) -> str:
    base = f"registry-{tld}"
    return base if task_queue == DEFAULT_TASK_QUEUE else f"{task_queue}/{base}"
