"""The state of one relaunch item, written together with its operation row and events.

`prepare` puts the row back to `todo` (event `relaunched`) so the new run's database-sync writes
land; `done` marks the item and the row `doing`; `finish_item` skips or fails an item and, when
its row went back to `todo` and nothing was sent, gives the row its status back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

_TERMINAL = ("done", "failed", "cancelled")


async def prepare(
    pool: AsyncConnectionPool, job_id: int, item: dict[str, Any], detail: dict[str, Any]
) -> str | None:
    """Put the row back to `todo` (event `relaunched`) and mark the item prepared, atomically, so
    the new run's database-sync writes land. Returns why not, when the row has moved on."""
    op = item["operation_id"]
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT status FROM operations WHERE operation_id = %s FOR UPDATE", (op,)
        )
        row = await cur.fetchone()
        status = row[0] if row else "gone"
        failed = item["previous_status"] == "failed"
        if status == "gone" or (status != "failed" if failed else status in _TERMINAL):
            return f"row is now {status}"
        await conn.execute(
            "UPDATE operations SET status = 'todo', error_code = NULL, error_message = NULL,"
            " finished_at = NULL, updated_at = now() WHERE operation_id = %s",
            (op,),
        )
        await conn.execute(
            "INSERT INTO operation_events (operation_id, event, detail)"
            " VALUES (%s, 'relaunched', %s)",
            (op, Jsonb({"job_id": job_id, **detail})),
        )
        await _set_prepared(conn, job_id, op, detail)
    return None


async def mark_prepared(
    pool: AsyncConnectionPool, job_id: int, operation_id: str, detail: dict[str, Any]
) -> None:
    """Legacy items: the requeue itself moves the row; note when it was decided."""
    async with pool.connection() as conn:
        await _set_prepared(conn, job_id, operation_id, detail)


async def _set_prepared(conn: Any, job_id: int, operation_id: str, d: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE relaunch_items SET prepared_at = now(), action = %s, from_run_id = %s,"
        " reset_event_id = %s WHERE job_id = %s AND operation_id = %s",
        (d.get("action"), d.get("from_run_id"), d.get("reset_event_id"), job_id, operation_id),
    )


async def done(
    pool: AsyncConnectionPool,
    job_id: int,
    item: dict[str, Any],
    *,
    run_id: str | None,
    relaunched_at: dt.datetime | None,
    doing: bool = False,
    event: dict[str, Any] | None = None,
) -> None:
    """Item done; with `doing` the row (still todo) says the new run is under way; `event`
    records `relaunched` (legacy: after the requeue)."""
    op = item["operation_id"]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE relaunch_items SET status = 'done', run_id = %s,"
            " relaunched_at = coalesce(%s, relaunched_at, now()), finished_at = now()"
            " WHERE job_id = %s AND operation_id = %s",
            (run_id, relaunched_at, job_id, op),
        )
        if doing:
            await conn.execute(
                "UPDATE operations SET status = 'doing', workflow_id = %s, run_id = %s,"
                " started_at = coalesce(started_at, now()), updated_at = now()"
                " WHERE operation_id = %s AND status = 'todo'",
                (item["workflow_id"], run_id, op),
            )
        if event is not None:
            await conn.execute(
                "INSERT INTO operation_events (operation_id, event, detail)"
                " VALUES (%s, 'relaunched', %s)",
                (op, Jsonb({"job_id": job_id, **event})),
            )


async def finish_item(
    pool: AsyncConnectionPool,
    job_id: int,
    item: dict[str, Any],
    status: str,
    detail: str,
    *,
    restore: bool = False,
) -> None:
    """Item skipped or failed; with `restore` (its row went back to todo and nothing was sent)
    the row gets its status back, with event `relaunch.failed`."""
    op = item["operation_id"]
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE relaunch_items SET status = %s, detail = %s, finished_at = now()"
            " WHERE job_id = %s AND operation_id = %s",
            (status, detail[:500], job_id, op),
        )
        if not restore:
            return
        cur = await conn.execute(
            "UPDATE operations SET status = %s, error_code = coalesce(%s, 'RelaunchFailed'),"
            " error_message = %s, updated_at = now(),"
            " finished_at = CASE WHEN %s IN ('done', 'failed', 'cancelled') THEN now() END"
            " WHERE operation_id = %s AND status = 'todo' AND %s <> 'todo' RETURNING 1",
            (
                item["previous_status"],
                item["previous_error"],
                f"relaunch failed: {detail}"[:500],
                item["previous_status"],
                op,
                item["previous_status"],
            ),
        )
        if await cur.fetchone():
            await conn.execute(
                "INSERT INTO operation_events (operation_id, event, detail)"
                " VALUES (%s, 'relaunch.failed', %s)",
                (op, Jsonb({"job_id": job_id, "error": detail[:500]})),
            )


async def requeued_since(pool: AsyncConnectionPool, operation_id: str, since: dt.datetime) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM operation_events WHERE operation_id = %s"
            " AND event = 'requeued' AND at >= %s)",
            (operation_id, since),
        )
        row = await cur.fetchone()
    return bool(row and row[0])
