"""`LegacyEngine`: the Engine port over the legacy engine's tables.

The legacy engine polls the operations table: handing it a renewal is creating the row, a
cancel is a flag its robots honour between steps (or at once when no robot holds the row and
nothing was charged), a relaunch is a requeue. Every write goes through `renewals.operations`.
"""

from __future__ import annotations

from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from legacy_adapter.errors import CancelRefused, RequeueRefused
from renewals import operations
from renewals.engine import CancelResult, RelaunchItem, RelaunchPlan, RelaunchSkipped
from renewals.errors import OperationNotFound, RenewalTaken
from renewals.model import Engine, Operation, OperationStatus, Origin, RenewalRequest, Step

log = structlog.get_logger(__name__)

# Steps after which the registry may have renewed: too late to cancel.
_PAST_RENEW = (Step.RENEW, Step.RECORD)
_WAITING = (OperationStatus.TODO, OperationStatus.ERROR)
_NOT_REQUEUEABLE = (OperationStatus.DONE, OperationStatus.CANCELLED, OperationStatus.TODO)
_REQUEUE = RelaunchPlan("requeue", detail={"action": "requeue"})


class LegacyEngine:
    kind = Engine.LEGACY

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def submit(
        self, conn: AsyncConnection[Any], request: RenewalRequest, origin: Origin = Origin.ROUTER
    ) -> Operation:
        """The operation row the robots will pick up, in the caller's transaction."""
        operation = await operations.insert(conn, request, Engine.LEGACY, origin=origin)
        log.info(
            "legacy.submitted",
            operation_id=request.operation_id,
            domain=request.domain,
            origin=origin.value,
        )
        return operation

    def workflow_id(self, request: RenewalRequest) -> str | None:
        return None  # the robots poll the table: no run of their own to name

    async def create(self, request: RenewalRequest, origin: Origin = Origin.ROUTER) -> Operation:
        """`submit` in a transaction of its own (imports, tools, tests)."""
        async with self.pool.connection() as conn, conn.transaction():
            return await self.submit(conn, request, origin)

    async def start(self, request: RenewalRequest) -> str | None:
        return None  # the robots poll the table

    # -- cancel --------------------------------------------------------------------------------
    async def cancel_now(self, operation_id: str) -> Operation:
        """Cancel: at once when no robot holds it and nothing was charged, else flagged for the
        robot to honour (it refunds between steps).

        Refused (CancelRefused) once the renewal reached the registry step or finished. The row
        lock makes this atomic with a robot's move to the registry step."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await operations.lock(conn, operation_id, Engine.LEGACY)
            if row.status == OperationStatus.CANCELLED:
                return row
            if row.status.terminal or row.step in _PAST_RENEW:
                raise CancelRefused(operation_id, row.status.value, row.step)
            # Waiting (todo, or error until its next attempt) is held by no robot; a charge may
            # exist without charged_cents (a robot that died or failed right after charging).
            untouched = row.status in _WAITING and not await operations.charged(conn, operation_id)
            updated = await operations.flag_cancel(
                conn, operation_id, {"via": "legacy"}, now_final=untouched
            )
        log.info("legacy.cancel", operation_id=operation_id, immediate=untouched)
        return updated

    async def cancel(self, operation: Operation, reason: str) -> CancelResult:
        op = operation.operation_id
        try:
            updated = await self.cancel_now(op)
        except CancelRefused as exc:
            return CancelResult(op, Engine.LEGACY, False, exc.status, str(exc))
        done = updated.status == OperationStatus.CANCELLED
        text = (
            "cancelled" if done else "cancel requested: the legacy robot stops before its next step"
        )
        return CancelResult(op, Engine.LEGACY, True, updated.status.value, text)

    # -- requeue and relaunch ------------------------------------------------------------------
    async def requeue(self, operation_id: str) -> Operation:
        """Put a failed, errored or stuck legacy operation back in the robots' queue."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await operations.lock(conn, operation_id, Engine.LEGACY)
            if row.status in _NOT_REQUEUEABLE:
                raise RequeueRefused(operation_id, row.status.value)
            if row.status == OperationStatus.DOING and not await _lease_expired(conn, row):
                raise RequeueRefused(operation_id, "doing (a robot holds it)")
            try:
                updated = await operations.requeue(conn, operation_id)
            except RenewalTaken as exc:
                raise RequeueRefused(
                    operation_id, f"{row.status.value}; {exc.owner} has the renewal"
                ) from exc
        log.info("legacy.requeued", operation_id=operation_id, previous_status=row.status.value)
        return updated

    async def relaunch_plan(self, item: RelaunchItem) -> RelaunchPlan:
        return _REQUEUE

    async def relaunch_sent(self, item: RelaunchItem) -> str | None:
        if item.prepared_at is None:
            return None
        op = item.operation.operation_id
        sent = await operations.event_since(self.pool, op, "requeued", item.prepared_at)
        return "" if sent else None

    async def relaunch(self, item: RelaunchItem, plan: RelaunchPlan, request_id: str) -> str:
        try:
            await self.requeue(item.operation.operation_id)
        except (RequeueRefused, OperationNotFound) as exc:
            raise RelaunchSkipped(str(exc)) from exc
        return ""

    async def describe(self, operation: Operation) -> dict[str, Any]:
        return {
            "attempts": operation.attempts,
            "lease_expires_at": (
                operation.lease_expires_at.isoformat() if operation.lease_expires_at else None
            ),
        }


async def _lease_expired(conn: AsyncConnection[Any], row: Operation) -> bool:
    """Whether the robot's lease ran out, by the database's clock (the one robots use)."""
    if row.lease_expires_at is None:
        return True
    cur = await conn.execute("SELECT %s::timestamptz < now()", (row.lease_expires_at,))
    found = await cur.fetchone()
    return bool(found and found[0])
