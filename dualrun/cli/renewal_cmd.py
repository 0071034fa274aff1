"""`dualrun submit`, `dualrun status` and `dualrun cancel`: one renewal at a time, routed.

Options are read as text and validated by the model, so any bad input ends with one line naming
the field (exit 2) and nothing written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from dualrun.cli.context import EXIT_FAILURE, AppContext, emit, json_option, pass_app
from dualrun.cli.submit_file import file_option, submit_file
from dualrun.wiring import renewal_service, workflow_links
from renewals.errors import InvalidInput
from renewals.model import Engine, Mode, RenewalRequest
from temporal_flow.ids import workflow_id
from temporal_flow.types import RunMode


def _years(raw: str | None) -> int | None:
    if raw is None:
        return None
    text = raw.strip()
    if not text.lstrip("-").isdigit():
        raise InvalidInput("years", f"must be an integer, got {raw[:20]!r}")
    return int(text)


@click.command("submit")
@click.option("--domain", help="Domain to renew (IDNs accepted).")
@click.option("--years", help="Renewal period, 1-10 years.")
@click.option("--current-expiry", help="Current expiry date, YYYY-MM-DD.")
@click.option("--customer", help="Customer id charged for the renewal.")
@click.option("--operation-id", help="Operation id to use (assigned when absent).")
@file_option
@json_option
@pass_app
def submit(
    app: AppContext,
    domain: str | None,
    years: str | None,
    current_expiry: str | None,
    customer: str | None,
    operation_id: str | None,
    path: Path | None,
    as_json: bool,
) -> int:
    """Route a renewal (once per idempotency key) and hand it to its engine; with --file,
    a whole batch (each row as one submit would, 1,000 at a time).

    Resubmitting the same renewal answers with the operation already made
    (deduplicated: true); the same key with other years or customer is refused (exit 2).
    A file with any bad row is refused whole, every bad line named (exit 2, nothing written).
    """
    if path is not None:
        given = [n for n, v in (("domain", domain), ("years", years),
                 ("current-expiry", current_expiry), ("customer", customer),
                 ("operation-id", operation_id)) if v is not None]  # fmt: skip
        if given:
            raise InvalidInput("file", f"give --file or --{given[0]} (one renewal), not both")
        return submit_file(app, path, as_json)
    raw: dict[str, Any] = {
        "domain": domain,
        "years": _years(years),
        "current_expiry": current_expiry,
        "customer_id": customer,
    }
    if operation_id is not None:
        raw["operation_id"] = operation_id
    request = RenewalRequest.parse(raw, app.settings.tlds)

    async def run() -> dict[str, Any]:
        async with renewal_service(app.settings, pool_size=2) as service:
            return (await service.submit(request)).as_dict()

    result = asyncio.run(run())
    text = (
        f"{result['operation_id']}  {result['idempotency_key']}  engine={result['engine']}"
        f"  mode={result['mode']}  status={result['status']}"
        + ("  (deduplicated)" if result["deduplicated"] else "")
    )
    if "dispatch_error" in result:
        text += f"\nworkflow not started (the operation stays todo): {result['dispatch_error']}"
    emit(result, as_json, text)
    return EXIT_FAILURE if "dispatch_error" in result else 0


@click.command("status")
@click.argument("operation_id")
@json_option
@pass_app
def status(app: AppContext, operation_id: str, as_json: bool) -> None:
    """Status, step, engine, routing and outcome of one operation."""

    async def run() -> dict[str, Any]:
        async with renewal_service(app.settings, pool_size=1) as service:
            return await service.status(operation_id)

    doc = asyncio.run(run())
    doc.update(_workflow_urls(app, doc))
    outcome = {k: v for k, v in doc["outcome"].items() if v is not None}
    text = (
        f"{doc['operation_id']}  {doc['domain']}  engine={doc['engine']}  mode={doc['mode']}"
        f"  status={doc['status']}  step={doc['step']}"
        + (f"\noutcome: {outcome}" if outcome else "")
        + (
            f"\nworkflow in the Temporal Web UI: {doc['workflow_url']}"
            if doc["workflow_url"]
            else ""
        )
        + (f"\nshadow plan in the Temporal Web UI: {doc['plan_url']}" if doc["plan_url"] else "")
    )
    emit(doc, as_json, text)


def _workflow_urls(app: AppContext, doc: dict[str, Any]) -> dict[str, str | None]:
    """The operation's workflow (a Temporal renewal) and its shadow plan's (a legacy renewal
    in shadow mode) in the Temporal Web UI."""
    links = workflow_links(app.settings)
    key = doc["idempotency_key"]
    temporal = doc["engine"] == Engine.TEMPORAL.value
    return {
        "workflow_url": links.workflow(doc["workflow_id"] or key) if temporal else None,
        "plan_url": links.workflow(workflow_id(key, RunMode.SHADOW))
        if doc["mode"] == Mode.SHADOW.value
        else None,
    }


@click.command("cancel")
@click.argument("operation_id")
@click.option("--reason", default="requested by operator", show_default=True)
@json_option
@pass_app
def cancel(app: AppContext, operation_id: str, reason: str, as_json: bool) -> int:
    """Cancel a renewal before its registry step (exit 1 when refused)."""

    async def run() -> dict[str, Any]:
        async with renewal_service(app.settings, pool_size=1) as service:
            return (await service.cancel(operation_id, reason)).as_dict()

    result = asyncio.run(run())
    word = "accepted" if result["accepted"] else "REFUSED"
    emit(result, as_json, f"{operation_id}: cancel {word}: {result['message']}")
    return 0 if result["accepted"] else EXIT_FAILURE


COMMANDS = [submit, status, cancel]
