"""Links to workflows in the Temporal Web UI."""

from __future__ import annotations

from renewals.links import NO_LINKS, WorkflowLinks


def test_workflow_link_encodes_the_id_namespace_and_run() -> None:
    """`{ui}/namespaces/{ns}/workflows/{id}[/{run}]`, each part URL-encoded; no UI, no link."""
    links = WorkflowLinks("http://127.0.0.1:8233/", "my ns")
    assert links.workflow("renew:a.fr:2027-01-01") == (
        "http://127.0.0.1:8233/namespaces/my%20ns/workflows/renew%3Aa.fr%3A2027-01-01"
    )
    assert links.workflow("shadow:renew:a/b", "r-1") == (
        "http://127.0.0.1:8233/namespaces/my%20ns/workflows/shadow%3Arenew%3Aa%2Fb/r-1"
    )
    assert links.workflow(None) is None and links.workflow("") is None
    assert NO_LINKS.workflow("renew:a.fr:2027-01-01") is None
