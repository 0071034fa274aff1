"""Hand renewals to the legacy engine and read what it did, through the existing tables only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from legacy_adapter.errors import CancelRefused, RequeueRefused
from renewals.model import Engine, OperationStatus, Outcome, RenewalRequest
from renewals.operations import (
    OperationNotFound,
    OperationStore,
    insert_operation,
    outcome_from_row,
)

log = structlog.get_logger(__name__)

# Steps after which the registry may have renewed: too late to cancel.
_PAST_RENEW = ("renew", "record")
_WAITING = (OperationStatus.TODO, OperationStatus.ERROR)


class LegacyAdapter:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.store = OperationStore(pool)

    async def submit(
        self,
        request: RenewalRequest,
        *,
        origin: str = "router",
        conn: AsyncConnection[Any] | None = None,
    ) -> Outcome:
        """Create the operation row the robots will pick up (in `conn`'s transaction if given)."""
        if conn is not None:
            row = await insert_operation(conn, request, Engine.LEGACY, origin=origin)
        else:
            async with self.pool.connection() as own:
                row = await insert_operation(own, request, Engine.LEGACY, origin=origin)
        log.info(
            "legacy.submitted",
            operation_id=request.operation_id,
            domain=request.domain,
            origin=origin,
        )
        return outcome_from_row(row)

    async def outcome(self, operation_id: str) -> Outcome:
        return await self.store.outcome(operation_id)

    async def outcomes(self, since: dt.datetime, until: dt.datetime) -> list[Outcome]:
        """All legacy operations created in [since, until), set-based."""
        return await self.store.outcomes(since, until, Engine.LEGACY)

    async def cancel(self, operation_id: str) -> Outcome:
        """Cancel: at once when no robot holds it and nothing was charged, else flagged for the
        robot to honour (it refunds between steps).

        Refused once the renewal reached the registry step or finished. The row lock makes this
        atomic with a robot's move to the registry step.
        """
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            row = await _lock_legacy_row(cur, operation_id)
            status = OperationStatus(row["status"])
            if status == OperationStatus.CANCELLED:
                return outcome_from_row(row)
            if status.terminal or row["step"] in _PAST_RENEW:
                raise CancelRefused(operation_id, status.value, row["step"])
            # Waiting (todo, or error until its next attempt) is held by no robot; a charge may
            # exist without charged_cents (a robot that died or failed right after charging).
            untouched = status in _WAITING and not await _charged(cur, operation_id)
            await cur.execute(
                "UPDATE operations SET cancel_requested_at = coalesce(cancel_requested_at, now()),"
                " status = CASE WHEN %s THEN 'cancelled' ELSE status END,"
                " finished_at = CASE WHEN %s THEN now() ELSE finished_at END,"
                " updated_at = now() WHERE operation_id = %s RETURNING *",
                (untouched, untouched, operation_id),
            )
            updated = await cur.fetchone()
            await conn.execute(
                "INSERT INTO operation_events (operation_id, event) VALUES (%s, %s)",
                (operation_id, "cancelled" if untouched else "cancel_requested"),
            )
        assert updated is not None
        log.info("legacy.cancel", operation_id=operation_id, immediate=untouched)
        return outcome_from_row(updated)

    async def requeue(self, operation_id: str) -> Outcome:
        """Put a failed, errored or stuck legacy operation back in the robots' queue."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            row = await _lock_legacy_row(cur, operation_id)
            if row["status"] in ("done", "cancelled", "todo"):
                raise RequeueRefused(operation_id, row["status"])
            if row["status"] == "doing" and not await _lease_expired(cur, row):
                raise RequeueRefused(operation_id, "doing (a robot holds it)")
            await cur.execute(
                "UPDATE operations SET status = 'todo', attempts = 0, next_attempt_at = now(),"
                " lease_owner = NULL, lease_expires_at = NULL, error_code = NULL,"
                " error_message = NULL, finished_at = NULL, updated_at = now()"
                " WHERE operation_id = %s RETURNING *",
                (operation_id,),
            )
            updated = await cur.fetchone()
            await conn.execute(
                "INSERT INTO operation_events (operation_id, event) VALUES (%s, 'requeued')",
                (operation_id,),
            )
        assert updated is not None
        log.info("legacy.requeued", operation_id=operation_id, previous_status=row["status"])
        return outcome_from_row(updated)


async def _lock_legacy_row(cur: AsyncCursor[dict[str, Any]], operation_id: str) -> dict[str, Any]:
    await cur.execute(
        "SELECT * FROM operations WHERE operation_id = %s AND engine = 'legacy' FOR UPDATE",
        (operation_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise OperationNotFound(operation_id)
    return row


async def _charged(cur: AsyncCursor[dict[str, Any]], operation_id: str) -> bool:
    await cur.execute(
        "SELECT EXISTS (SELECT 1 FROM billing_ledger WHERE operation_id = %s AND kind = 'charge')"
        " AS charged",
        (operation_id,),
    )
    found = await cur.fetchone()
    return bool(found and found["charged"])


async def _lease_expired(cur: AsyncCursor[dict[str, Any]], row: dict[str, Any]) -> bool:
    await cur.execute(
        "SELECT %s::timestamptz IS NULL OR %s::timestamptz < now() AS expired",
        (row["lease_expires_at"], row["lease_expires_at"]),
    )
    found = await cur.fetchone()
    return bool(found and found["expired"])
