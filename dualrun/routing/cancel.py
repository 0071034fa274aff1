"""Cancelling a renewal in whichever engine runs it.

Legacy: the legacy adapter (at once when untouched, else flagged for its robot). Temporal: the
workflow's `request_cancel` update — refused by the workflow once the registry step has begun —
and, only when accepted, the row's cancel flag (which the interceptors honour too). A temporal
row whose workflow never started (a failed start) is cancelled in the database directly.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from dualrun.routing.dispatch import TemporalLink
from legacy_adapter.adapter import LegacyAdapter
from legacy_adapter.errors import CancelRefused
from renewals.errors import InvalidInput
from renewals.model import Engine, OperationStatus
from renewals.operations import OperationStore

log = structlog.get_logger(__name__)

_OPERATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def check_operation_id(operation_id: str) -> None:
    if not isinstance(operation_id, str) or not _OPERATION_ID.match(operation_id):
        raise InvalidInput(
            "operation_id", "must be 1-64 characters of letters, digits, '.', '_', ':' or '-'"
        )


@dataclass(frozen=True)
class CancelResult:
    operation_id: str
    engine: str
    accepted: bool
    status: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "engine": self.engine,
            "accepted": self.accepted,
            "status": self.status,
            "message": self.message,
        }


def _cause(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    return str(cause or exc)


async def cancel_operation(
    pool: AsyncConnectionPool, temporal: TemporalLink, operation_id: str, reason: str
) -> CancelResult:
    check_operation_id(operation_id)
    store = OperationStore(pool)
    row = await store.get(operation_id)  # OperationNotFound when unknown
    if row["engine"] == Engine.LEGACY.value:
        try:
            outcome = await LegacyAdapter(pool).cancel(operation_id)
        except CancelRefused as exc:
            return CancelResult(operation_id, "legacy", False, exc.status, str(exc))
        done = outcome.status == OperationStatus.CANCELLED
        text = (
            "cancelled" if done else "cancel requested: the legacy robot stops before its next step"
        )
        return CancelResult(operation_id, "legacy", True, outcome.status.value, text)
    return await _cancel_workflow(store, temporal, row, reason)


async def _cancel_workflow(
    store: OperationStore, temporal: TemporalLink, row: dict[str, Any], reason: str
) -> CancelResult:
    operation_id = row["operation_id"]
    status = OperationStatus(row["status"])
    if status.terminal:
        return CancelResult(
            operation_id, "temporal", False, status.value, f"the renewal is already {status.value}"
        )
    client = await temporal.client()
    handle = client.get_workflow_handle(row["workflow_id"] or row["idempotency_key"])
    try:
        await handle.execute_update("request_cancel", reason)
    except WorkflowUpdateFailedError as exc:
        message = f"refused by the workflow: {_cause(exc)}"
        log.info("router.cancel.refused", operation_id=operation_id, reason=message)
        return CancelResult(operation_id, "temporal", False, status.value, message)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return await _no_running_workflow(store, temporal, row, handle)
    await store.update(
        operation_id,
        event="cancel_requested",
        detail={"via": "request_cancel", "reason": reason},
        cancel_requested_at=dt.datetime.now(dt.UTC),
    )
    log.info("router.cancel.accepted", operation_id=operation_id)
    message = "cancel accepted: no further side effect starts; a charge already made is refunded"
    return CancelResult(operation_id, "temporal", True, status.value, message)


async def _no_running_workflow(
    store: OperationStore, temporal: TemporalLink, row: dict[str, Any], handle: Any
) -> CancelResult:
    operation_id = row["operation_id"]
    try:
        await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        # never started (its start failed): nothing ran, cancel the row itself
        now = dt.datetime.now(dt.UTC)
        if await store.update(
            operation_id,
            event="cancelled",
            detail={"via": "router", "workflow": "never started"},
            where="AND status = 'todo'",
            status="cancelled",
            cancel_requested_at=now,
            finished_at=now,
        ):
            log.info("router.cancel.accepted", operation_id=operation_id, workflow="none")
            return CancelResult(
                operation_id,
                "temporal",
                True,
                "cancelled",
                "cancelled (its workflow never started)",
            )
    current = await store.get(operation_id)
    return CancelResult(
        operation_id,
        "temporal",
        False,
        current["status"],
        f"the workflow has finished; the renewal is {current['status']}",
    )
