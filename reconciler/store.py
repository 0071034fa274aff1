"""Runs and findings in the database; the one-run-at-a-time advisory lock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from reconciler.model import ALERTING, Finding, Window
from renewals.errors import DualrunError

LOCK_KEY = 0x72636E  # "rcn": one reconciliation at a time across processes and replicas
# scoped to the schema, like the migrations' lock: deployments sharing a database don't queue
_SCOPE = "hashtext(coalesce(current_schema(), ''))"


class RunInProgress(DualrunError):
    def __init__(self) -> None:
        super().__init__("reconcile: another reconciliation is running (use --wait to queue)")


class RunAlreadyDone(DualrunError):
    def __init__(self, kind: str, window: Window) -> None:
        super().__init__(f"reconcile: the {kind} run for {window.since}..{window.until} exists")
        self.kind = kind
        self.window = window


@asynccontextmanager
async def exclusive(pool: AsyncConnectionPool, wait: bool) -> AsyncIterator[None]:
    """Hold the reconciliation advisory lock (session level, on a connection of its own)."""
    async with pool.connection() as conn:
        if wait:
            await conn.execute(f"SELECT pg_advisory_lock(%s, {_SCOPE})", (LOCK_KEY,))
        else:
            cur = await conn.execute(f"SELECT pg_try_advisory_lock(%s, {_SCOPE})", (LOCK_KEY,))
            row = await cur.fetchone()
            if not (row and row[0]):
                raise RunInProgress()
        try:
            yield
        finally:
            await conn.execute(f"SELECT pg_advisory_unlock(%s, {_SCOPE})", (LOCK_KEY,))


async def start_run(pool: AsyncConnectionPool, kind: str, window: Window) -> int:
    async with pool.connection() as conn:
        try:
            cur = await conn.execute(
                "INSERT INTO reconciliation_runs (kind, window_start, window_end)"
                " VALUES (%s, %s, %s) RETURNING run_id",
                (kind, window.since, window.until),
            )
        except psycopg.errors.UniqueViolation:
            raise RunAlreadyDone(kind, window) from None
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def finish_run(
    pool: AsyncConnectionPool,
    run_id: int,
    *,
    operations: int,
    counts: dict[str, int],
    new_findings: int,
    error: str | None = None,
    unchecked: tuple[str, ...] = (),
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE reconciliation_runs SET status = %s, finished_at = now(), operations = %s,"
            " counts = %s, new_findings = %s, error = %s, unchecked = %s WHERE run_id = %s",
            (
                "failed" if error else "ok",
                operations,
                Jsonb(counts),
                new_findings,
                error,
                list(unchecked),
                run_id,
            ),
        )


_UPSERT = """
INSERT INTO findings (finding_key, kind, severity, tld, engine, idempotency_key, operation_ids,
                      summary, evidence, first_run_id, last_run_id)
VALUES (%(key)s, %(kind)s, %(severity)s, %(tld)s, %(engine)s, %(idempotency_key)s,
        %(operation_ids)s, %(summary)s, %(evidence)s, %(run_id)s, %(run_id)s)
ON CONFLICT (finding_key) DO UPDATE SET
    last_run_id = excluded.last_run_id, last_seen_at = now(), summary = excluded.summary,
    operation_ids = excluded.operation_ids, evidence = excluded.evidence
RETURNING finding_key, (xmax = 0) AS inserted
"""


async def record_findings(
    pool: AsyncConnectionPool, run_id: int, findings: list[Finding]
) -> set[str]:
    """Upsert by stable key; return the keys seen for the first time."""
    params = [
        {
            "key": f.key,
            "kind": f.kind.value,
            "severity": f.severity.value,
            "tld": f.tld,
            "engine": f.engine,
            "idempotency_key": f.idempotency_key,
            "operation_ids": list(f.operation_ids),
            "summary": f.summary,
            "evidence": Jsonb(json.loads(json.dumps(f.evidence, default=str))),
            "run_id": run_id,
        }
        for f in findings
    ]
    new: set[str] = set()
    if not params:
        return new
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor()
        await cur.executemany(_UPSERT, params, returning=True)  # pipelined, one round trip
        while True:
            row = await cur.fetchone()
            if row and row[1]:
                new.add(row[0])
            if not cur.nextset():
                break
    return new


async def pending_alerts(pool: AsyncConnectionPool) -> list[dict[str, Any]]:
    """Alerting findings whose webhook has not been delivered yet (new, or failed before)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT * FROM findings WHERE alerted_at IS NULL AND kind = ANY(%s)"
            " ORDER BY first_seen_at, finding_key",
            ([k.value for k in ALERTING],),
        )
        return await cur.fetchall()


async def mark_alerted(pool: AsyncConnectionPool, keys: list[str]) -> None:
    if keys:
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE findings SET alerted_at = now() WHERE finding_key = ANY(%s)", (keys,)
            )
