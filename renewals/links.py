"""Links to workflows in the Temporal Web UI (2.x), as reports and `dualrun status` show them.

`{ui}/namespaces/{namespace}/workflows/{workflow_id}[/{run_id}]`, each part URL-encoded (a
workflow id is an idempotency key such as `renew:example.fr:2027-01-01`). Without a run id the
UI opens the workflow's latest run, which stays right after a reset or a relaunch.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class WorkflowLinks:
    """Where the Web UI is (None: no UI known, so no links) and the namespace of the workflows."""

    ui_url: str | None = None
    namespace: str = "default"

    def workflow(self, workflow_id: str | None, run_id: str | None = None) -> str | None:
        """The workflow's page, or None when there is no UI or no workflow id."""
        if not self.ui_url or not workflow_id:
            return None
        url = (
            f"{self.ui_url.rstrip('/')}/namespaces/{quote(self.namespace, safe='')}"
            f"/workflows/{quote(workflow_id, safe='')}"
        )
        return f"{url}/{quote(run_id, safe='')}" if run_id else url


NO_LINKS = WorkflowLinks()
