"""Relaunch jobs in the database: the selection (set-based), the job and its items, resume.

A job is created with all its items in one transaction (INSERT ... SELECT over the window), so
what a job relaunches is fixed when it starts; a resumed job works through its pending items only.
One process at a time runs a selection (a session advisory lock on its key).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from dualrun.relaunch.items import JobItem
from dualrun.relaunch.model import REFUSALS, Selection
from renewals.errors import DualrunError
from renewals.model import Operation, OperationStatus
from renewals.operations import TERMINAL_SQL

_SELECT = f"""
SELECT o.*,
       CASE WHEN o.cancel_requested_at IS NOT NULL THEN 'cancel requested'
            WHEN NOT %(include_refusals)s AND o.error_code = ANY(%(refusals)s)
            THEN 'refused (' || o.error_code || '): --include-refusals relaunches it'
       END AS skip
FROM operations o
WHERE o.tld = %(tld)s AND o.created_at >= %(since)s AND o.created_at < %(until)s
  AND CASE WHEN %(status)s = 'failed' THEN o.status = 'failed'
           ELSE o.status NOT IN {TERMINAL_SQL}
                AND o.created_at < %(stuck_before)s END
"""
_ORDER = " ORDER BY o.created_at, o.operation_id"
_INSERT_ITEMS = f"""
INSERT INTO relaunch_items (job_id, operation_id, engine, previous_status, previous_error,
                            status, detail, finished_at)
SELECT %(job_id)s, s.operation_id, s.engine, s.status, s.error_code,
       CASE WHEN s.skip IS NULL THEN 'pending' ELSE 'skipped' END, s.skip,
       CASE WHEN s.skip IS NULL THEN NULL ELSE now() END
FROM ({_SELECT}) s
"""
_PENDING = """
SELECT o.*, i.job_id, i.previous_status, i.previous_error, i.prepared_at, i.from_run_id
FROM relaunch_items i JOIN operations o USING (operation_id)
WHERE i.job_id = %s AND i.status = 'pending' ORDER BY i.operation_id
"""
_LOCK = "hashtextextended(coalesce(current_schema(), '') || ':relaunch:' || %s, 0)"


class JobBusy(DualrunError):
    def __init__(self, selection: str) -> None:
        super().__init__(f"relaunch: another process is relaunching this selection {selection}")


class JobNotFound(DualrunError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"resume: no relaunch job {job_id}")


def _params(selection: Selection, now: dt.datetime) -> dict[str, Any]:
    since, until = selection.window(now)
    return {
        "tld": selection.tld,
        "status": selection.status,
        "since": since,
        "until": until,
        "stuck_before": now - dt.timedelta(minutes=selection.stuck_after_min),
        "include_refusals": selection.include_refusals,
        "refusals": sorted(REFUSALS),
    }


@asynccontextmanager
async def exclusive(pool: AsyncConnectionPool, selection: Selection) -> AsyncIterator[None]:
    """Hold the selection's advisory lock (session level, on a connection of its own)."""
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT pg_try_advisory_lock({_LOCK})", (selection.key,))
        row = await cur.fetchone()
        await conn.commit()
        if not (row and row[0]):
            raise JobBusy(selection.key)
        try:
            yield
        finally:
            await conn.execute(f"SELECT pg_advisory_unlock({_LOCK})", (selection.key,))


async def select(pool: AsyncConnectionPool, selection: Selection, now: dt.datetime) -> list[Any]:
    """The operations the selection takes now (the dry run's list), oldest first."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_SELECT + _ORDER, _params(selection, now))
        return await cur.fetchall()


async def open_job(
    pool: AsyncConnectionPool, selection: Selection, now: dt.datetime, rate: float
) -> tuple[int, bool]:
    """The selection's unfinished job (resumed: True), else a new one with all its items."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE relaunch_jobs SET runs = runs + 1, updated_at = now()"
            " WHERE selection = %s AND status = 'running' RETURNING job_id",
            (selection.key,),
        )
        found = await cur.fetchone()
        if found is not None:
            return int(found[0]), True
        since, until = selection.window(now)
        params = {**selection.as_dict(), "window": [since.isoformat(), until.isoformat()]}
        cur = await conn.execute(
            "INSERT INTO relaunch_jobs (selection, params) VALUES (%s, %s) RETURNING job_id",
            (selection.key, Jsonb({**params, "rate": rate})),
        )
        created = await cur.fetchone()
        assert created is not None
        job_id = int(created[0])
        await conn.execute(_INSERT_ITEMS, {**_params(selection, now), "job_id": job_id})
    return job_id, False


async def load_job(pool: AsyncConnectionPool, job_id: int) -> tuple[Selection, str]:
    """A job's selection and status (JobNotFound when there is none)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT params, status FROM relaunch_jobs WHERE job_id = %s", (job_id,))
        row = await cur.fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return Selection.from_dict(row["params"]), row["status"]


async def mark_resumed(pool: AsyncConnectionPool, job_id: int) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE relaunch_jobs SET runs = runs + 1, updated_at = now() WHERE job_id = %s",
            (job_id,),
        )


async def pending(pool: AsyncConnectionPool, job_id: int) -> list[JobItem]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_PENDING, (job_id,))
        rows = await cur.fetchall()
    return [
        JobItem(
            job_id=r["job_id"],
            operation=Operation.from_row(r),
            previous_status=OperationStatus(r["previous_status"]),
            previous_error=r["previous_error"],
            prepared_at=r["prepared_at"],
            from_run_id=r["from_run_id"],
        )
        for r in rows
    ]


async def tally(pool: AsyncConnectionPool, job_id: int) -> dict[str, Any]:
    """Counts by item status and by action; the job is finished once nothing is pending."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT status, action, count(*) AS n FROM relaunch_items WHERE job_id = %s"
            " GROUP BY status, action",
            (job_id,),
        )
        rows = await cur.fetchall()
        counts = {s: 0 for s in ("pending", "done", "skipped", "failed")}
        actions: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] += r["n"]
            if r["status"] == "done" and r["action"]:
                actions[r["action"]] = actions.get(r["action"], 0) + r["n"]
        if counts["pending"] == 0:
            await conn.execute(
                "UPDATE relaunch_jobs SET status = 'finished', finished_at = now(),"
                " updated_at = now() WHERE job_id = %s AND status = 'running'",
                (job_id,),
            )
        await cur.execute(
            "SELECT operation_id, engine, status, action, detail FROM relaunch_items"
            " WHERE job_id = %s AND status IN ('skipped', 'failed') ORDER BY operation_id",
            (job_id,),
        )
        problems = await cur.fetchall()
    return {"counts": counts, "actions": actions, "problems": problems}
