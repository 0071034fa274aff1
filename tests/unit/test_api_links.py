"""The OpenAPI links as schemathesis's stateful phase takes them (no server): a submission is an
entry point (not only the report list), and every documented link is a step it can take."""

from __future__ import annotations

import copy
from typing import Any

import schemathesis

from dualrun.api.app import create_app
from dualrun.api.reports import NEWEST_RUN
from renewals.settings import Settings

SPEC = create_app(Settings.from_env({"DUALRUN_API_TOKEN": "w", "DUALRUN_API_READ_TOKEN": "r"}))
DOCUMENT = SPEC.openapi()


def _links() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(operation label, status, link name, link) of every documented link."""
    return [
        (f"{method.upper()} {path}", status, name, link)
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        for name, link in response.get("links", {}).items()
    ]


def _plain(name: str) -> str:
    return "".join(c for c in name if c.isalnum())


def _rules(machine: type) -> list[str]:
    return [
        name for name in dir(machine) if hasattr(getattr(machine, name), "hypothesis_stateful_rule")
    ]


def test_the_stateful_phase_starts_from_a_submission_and_takes_every_link() -> None:
    """A submission and the report list are entry points, and each documented link (submit →
    status, cancel, submit again; report list → newest report) is a rule of the machine."""
    machine = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT)).as_state_machine()
    assert {"RANDOM__POST_renewals", "RANDOM__GET_reports"} <= set(machine.root_rules)
    rules = _rules(machine)
    names = {(label, status, name) for label, status, name, _ in _links()}
    assert {("POST /renewals", "201", "GetRenewal"), ("POST /renewals", "201", "CancelRenewal"),
            ("POST /renewals", "201", "SubmitAgain"), ("POST /renewals", "200", "GetRenewal"),
            ("POST /renewals", "200", "CancelRenewal"),
            ("GET /reports", "200", "GetNewestReport")} <= names  # fmt: skip
    for label, status, name in names:  # a rule is named after its link: `POST_renewals___201_...`
        step = _plain(f"{label}{status}{name}")
        assert any(_plain(rule).startswith(step) for rule in rules), (label, status, name)


def test_links_name_real_operations_and_read_what_every_format_carries() -> None:
    """Each link targets an operation of the document; the report list's link reads the header
    its JSON and HTML answers both carry, not a JSON body the HTML page lacks."""
    operation_ids = {op["operationId"] for ops in DOCUMENT["paths"].values() for op in ops.values()}
    for _, _, name, link in _links():
        assert link["operationId"] in operation_ids, name
    listing = DOCUMENT["paths"]["/reports"]["get"]["responses"]["200"]
    assert set(listing["content"]) == {"application/json", "text/html"}
    assert NEWEST_RUN in listing["headers"]
    parameters = listing["links"]["GetNewestReport"]["parameters"]
    assert parameters == {"run_id": f"$response.header.{NEWEST_RUN}"}
