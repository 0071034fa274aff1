"""Handing a decided renewal to its engine.

Inside the decision's transaction: the operation row (legacy and shadow through the legacy
adapter, temporal as an engine-temporal row whose workflow id is the key). After commit: the
Temporal workflow (live for temporal, a plan for shadow). A failed start leaves the row `todo`
and is logged, counted and reported; a resubmission of the key starts it again (the workflow
id makes that safe).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from dualrun.flags import metrics
from legacy_adapter.adapter import LegacyAdapter
from renewals.logs import redact_text
from renewals.model import Engine, Mode, RenewalRequest
from renewals.operations import insert_operation
from renewals.settings import Settings

log = structlog.get_logger(__name__)


class TemporalLink:
    """The Temporal client, connected on first use (a legacy-only process never connects)."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                from temporal_flow.starter import connect

                self._client = await connect(self.settings)
            return self._client


async def create_operation(
    conn: AsyncConnection[Any], pool: AsyncConnectionPool, request: RenewalRequest, mode: Mode
) -> dict[str, Any]:
    """The operation row, in the caller's transaction; returns {operation_id, engine, status}."""
    if mode == Mode.TEMPORAL:
        row = await insert_operation(
            conn, request, Engine.TEMPORAL, workflow_id=request.idempotency_key
        )
        return {
            "operation_id": row["operation_id"],
            "engine": row["engine"],
            "status": row["status"],
        }
    outcome = await LegacyAdapter(pool).submit(request, conn=conn)
    return {
        "operation_id": outcome.operation_id,
        "engine": outcome.engine.value,
        "status": outcome.status.value,
    }


async def start_workflow(
    link: TemporalLink, settings: Settings, request: RenewalRequest, mode: Mode
) -> str | None:
    """Start the live workflow (temporal) or the plan (shadow); the error text if it failed."""
    from temporal_flow.starter import renew_input, start_renewal
    from temporal_flow.types import RunMode

    run_mode = RunMode.LIVE if mode == Mode.TEMPORAL else RunMode.SHADOW
    try:
        client = await link.client()
        started = await start_renewal(
            client, settings.task_queue, renew_input(request, run_mode, settings)
        )
    except Exception as exc:  # any start failure: the row stays todo, reported, not lost
        error = redact_text(f"{type(exc).__name__}: {exc}", settings.secrets())
        metrics.DISPATCH_FAILURES.labels(mode=mode.value).inc()
        log.error(
            "router.dispatch.failed",
            operation_id=request.operation_id,
            idempotency_key=request.idempotency_key,
            mode=mode.value,
            error=error,
        )
        return error
    log.info(
        "router.dispatch.started",
        operation_id=request.operation_id,
        workflow_id=started.workflow_id,
        run_mode=run_mode.value,
        existing=started.existing,
    )
    return None
