"""The database writes that keep the operation row in step with its workflow.

Called only by the interceptors (and the plan activity), never by workflow code: the
registrar's database stays the source of truth, Temporal is the engine.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from dualrun.metrics import observe_renewal
from temporal_flow.types import PlanInput, SyncInput

_TERMINAL = ("done", "failed", "cancelled")

_START = """
WITH synced AS (
UPDATE operations SET status = 'doing', workflow_id = %(workflow_id)s, run_id = %(run_id)s,
       started_at = coalesce(started_at, now()), updated_at = now()
WHERE operation_id = %(operation_id)s AND status NOT IN ('done', 'failed', 'cancelled')
RETURNING operation_id)
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, %(event)s, %(detail)s FROM synced
"""
_FINISH = """
WITH synced AS (
UPDATE operations SET status = %(status)s, workflow_id = %(workflow_id)s, run_id = %(run_id)s,
       new_expiry = coalesce(%(new_expiry)s::date, new_expiry),
       registry_transaction_id = coalesce(%(registry_transaction_id)s, registry_transaction_id),
       charged_cents = coalesce(%(charged_cents)s, charged_cents),
       refunded_cents = coalesce(%(refunded_cents)s, refunded_cents),
       currency = coalesce(%(currency)s, currency),
       error_code = %(error_code)s, error_message = %(error_message)s,
       step = CASE WHEN %(status)s = 'done' THEN 'record' ELSE step END,
       finished_at = now(), updated_at = now()
WHERE operation_id = %(operation_id)s
RETURNING operation_id, tld, created_at, finished_at),
logged AS (
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, %(event)s, %(detail)s FROM synced)
SELECT tld, created_at, finished_at FROM synced
"""
_EVENT = """
INSERT INTO operation_events (operation_id, step, event, attempt, detail)
SELECT %(operation_id)s, %(step)s, %(event)s, %(attempt)s, %(detail)s
WHERE EXISTS (SELECT 1 FROM operations WHERE operation_id = %(operation_id)s)
"""


async def sync_operation(pool: AsyncConnectionPool, inp: SyncInput) -> None:
    result = inp.result
    params: dict[str, Any] = {
        "operation_id": inp.operation_id,
        "workflow_id": inp.workflow_id,
        "run_id": inp.run_id,
        "status": inp.status,
        "new_expiry": result.new_expiry if result else None,
        "registry_transaction_id": result.registry_transaction_id if result else None,
        "charged_cents": result.charged_cents if result else None,
        "refunded_cents": result.refunded_cents if result else None,
        "currency": result.currency if result else None,
        "error_code": inp.error_code,
        "error_message": (inp.error_message or "")[:500] or None,
    }
    params["event"] = f"workflow.{inp.status}"
    params["detail"] = Jsonb({"run_id": inp.run_id, "error_code": inp.error_code})
    async with pool.connection() as conn:
        if inp.status not in _TERMINAL:
            await conn.execute(_START, params)
            return
        cur = await conn.execute(_FINISH, params)
        row = await cur.fetchone()
    if row is not None and inp.status == "done":
        observe_renewal("temporal", row[0], row[1], row[2])


_STEP = """
WITH moved AS (
    UPDATE operations SET step = %(step)s, updated_at = now()
    WHERE operation_id = %(operation_id)s
    RETURNING operation_id)
INSERT INTO operation_events (operation_id, step, event, attempt)
SELECT operation_id, %(step)s, 'step.started', %(attempt)s FROM moved
"""


async def step_started(
    pool: AsyncConnectionPool, operation_id: str, step: str, attempt: int
) -> None:
    """Record the step the operation is in now (one statement)."""
    async with pool.connection() as conn:
        await conn.execute(_STEP, {"operation_id": operation_id, "step": step, "attempt": attempt})


async def step_finished(
    pool: AsyncConnectionPool, operation_id: str, step: str, attempt: int, error: str | None
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            _EVENT,
            {
                "operation_id": operation_id,
                "step": step,
                "event": "step.failed" if error else "step.finished",
                "attempt": attempt,
                "detail": Jsonb({"error": error} if error else {}),
            },
        )


async def record_plan(pool: AsyncConnectionPool, inp: PlanInput) -> None:
    """Store what the shadow run would have done; a replayed plan changes nothing."""
    async with pool.connection() as conn:
        await conn.execute(
            """INSERT INTO shadow_plans (idempotency_key, operation_id, workflow_id, domain, tld,
                   years, registry_expiry, premium, would_charge_cents, currency,
                   expected_new_expiry, verdict, refusal)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (idempotency_key) DO NOTHING""",
            (
                inp.idempotency_key,
                inp.operation_id,
                inp.workflow_id,
                inp.domain,
                inp.domain.rsplit(".", 1)[-1],
                inp.years,
                inp.registry_expiry,
                inp.premium,
                inp.would_charge_cents,
                inp.currency,
                inp.expected_new_expiry,
                inp.verdict,
                inp.refusal,
            ),
        )


async def cancel_flagged(pool: AsyncConnectionPool, operation_id: str) -> bool:
    """Whether the tasks service flagged the operation for cancellation."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT cancel_requested_at IS NOT NULL FROM operations WHERE operation_id = %s",
            (operation_id,),
        )
        row = await cur.fetchone()
    return bool(row and row[0])
