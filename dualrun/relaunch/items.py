"""The state of one relaunch item, written together with its operation row (through
`renewals.operations`, the one writer of operations) in one transaction.

`prepare` records the plan and, when the plan reopens the row, puts it back to `todo` (event
`relaunched`) so the new run's writes land; `done` marks the item and, for a reopened row, the
row `doing` under the new run; `finish_item` skips or fails an item and, when its row went back
to `todo` and nothing was sent, gives the row its status back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from renewals import operations
from renewals.engine import RelaunchItem, RelaunchPlan
from renewals.errors import OperationNotFound, RenewalTaken
from renewals.model import Operation, OperationStatus


@dataclass(frozen=True)
class JobItem:
    """A pending item of a relaunch job, with its operation as it is now."""

    job_id: int
    operation: Operation
    previous_status: OperationStatus  # the row as selected, restored if the relaunch fails
    previous_error: str | None
    prepared_at: dt.datetime | None
    from_run_id: str | None

    @property
    def operation_id(self) -> str:
        return self.operation.operation_id

    @property
    def relaunch(self) -> RelaunchItem:
        return RelaunchItem(self.operation, self.from_run_id, self.prepared_at)


async def prepare(pool: AsyncConnectionPool, item: JobItem, plan: RelaunchPlan) -> str | None:
    """Record the plan on the item and, when it reopens the row, put the row back to `todo`
    (event `relaunched`), atomically. Returns why not, when the row has moved on."""
    op = item.operation_id
    async with pool.connection() as conn, conn.transaction():
        if plan.reopen:
            try:
                now = (await operations.lock(conn, op)).status
            except OperationNotFound:
                return "row is gone"
            was_failed = item.previous_status == OperationStatus.FAILED
            if now != OperationStatus.FAILED if was_failed else now.terminal:
                return f"row is now {now.value}"
            try:
                await operations.reopen(conn, op, {"job_id": item.job_id, **plan.detail})
            except RenewalTaken as exc:
                return f"{exc.owner} has the renewal now"
        await _set_prepared(conn, item, plan.detail)
    return None


async def _set_prepared(conn: AsyncConnection[Any], item: JobItem, d: Mapping[str, Any]) -> None:
    await conn.execute(
        "UPDATE relaunch_items SET prepared_at = now(), action = %s, from_run_id = %s,"
        " reset_event_id = %s WHERE job_id = %s AND operation_id = %s",
        (
            d.get("action"),
            d.get("from_run_id"),
            d.get("reset_event_id"),
            item.job_id,
            item.operation_id,
        ),
    )


async def done(
    pool: AsyncConnectionPool,
    item: JobItem,
    *,
    run_id: str,
    relaunched_at: dt.datetime | None,
    reopened: bool,
) -> None:
    """Item done. A reopened row (still `todo`) says the new run is under way; any other logs
    `relaunched` now (after the requeue)."""
    op = item.operation_id
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE relaunch_items SET status = 'done', run_id = %s,"
            " relaunched_at = coalesce(%s, relaunched_at, now()), finished_at = now()"
            " WHERE job_id = %s AND operation_id = %s",
            (run_id or None, relaunched_at, item.job_id, op),
        )
        if reopened:
            wid = item.operation.workflow_id or item.operation.idempotency_key
            await operations.relaunched_run(conn, op, wid, run_id)
        else:
            detail = {"job_id": item.job_id, "action": "requeue"}
            await operations.log_event(conn, op, "relaunched", detail)


async def finish_item(
    pool: AsyncConnectionPool, item: JobItem, status: str, detail: str, *, restore: bool = False
) -> None:
    """Item skipped or failed; with `restore` (its row went back to todo and nothing was sent)
    the row gets its status back, with event `relaunch.failed`."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE relaunch_items SET status = %s, detail = %s, finished_at = now()"
            " WHERE job_id = %s AND operation_id = %s",
            (status, detail[:500], item.job_id, item.operation_id),
        )
        if restore:
            await operations.restore(
                conn,
                item.operation_id,
                item.previous_status,
                item.previous_error,
                {"job_id": item.job_id, "error": detail[:500]},
            )
