"""The database writes that keep the operation row in step with its workflow.

Called only by the interceptors (and the plan activity), never by workflow code: the
registrar's database stays the source of truth, Temporal is the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from renewals.metrics import observe_renewal
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
WITH before AS (
    SELECT operation_id, status FROM operations
    WHERE operation_id = %(operation_id)s AND status NOT IN ('done', 'failed', 'cancelled')
    FOR UPDATE),
moved AS (
    UPDATE operations o SET status = 'doing', step = %(step)s,
           workflow_id = %(workflow_id)s, run_id = %(run_id)s,
           started_at = coalesce(o.started_at, now()), updated_at = now()
    FROM before WHERE o.operation_id = before.operation_id
    RETURNING o.operation_id, before.status AS was)
INSERT INTO operation_events (operation_id, step, event, attempt, detail)
SELECT operation_id, NULL, 'workflow.doing', NULL, %(detail)s FROM moved WHERE was <> 'doing'
UNION ALL
SELECT operation_id, %(step)s, 'step.started', %(attempt)s, '{}'::jsonb FROM moved
"""
_RECORD = """
WITH charge AS (
    SELECT amount_cents, currency FROM billing_ledger
    WHERE charge_key = (SELECT idempotency_key FROM operations
                        WHERE operation_id = %(operation_id)s)
      AND kind = 'charge'),
synced AS (
UPDATE operations SET status = 'done', step = 'record',
       workflow_id = %(workflow_id)s, run_id = %(run_id)s,
       new_expiry = %(new_expiry)s::date,
       registry_transaction_id = coalesce(%(registry_transaction_id)s, registry_transaction_id),
       charged_cents = coalesce((SELECT amount_cents FROM charge), charged_cents),
       currency = coalesce((SELECT currency FROM charge), currency),
       error_code = NULL, error_message = NULL,
       started_at = coalesce(started_at, now()), finished_at = now(), updated_at = now()
WHERE operation_id = %(operation_id)s
RETURNING operation_id, tld, created_at, finished_at),
logged AS (
INSERT INTO operation_events (operation_id, step, event, attempt, detail)
SELECT operation_id, 'renew', 'step.finished', %(attempt)s, '{}'::jsonb FROM synced
UNION ALL
SELECT operation_id, NULL, 'workflow.done', NULL, %(detail)s FROM synced)
SELECT tld, created_at, finished_at FROM synced
"""


@dataclass(frozen=True)
class StepOf:
    """Which operation, workflow run, step and attempt an activity's step write is about."""

    operation_id: str
    step: str
    attempt: int
    workflow_id: str
    run_id: str


async def step_started(pool: AsyncConnectionPool, at: StepOf) -> None:
    """The row is `doing`, in this step, under this run (one statement). The first step of a
    run moves the row to `doing` (event `workflow.doing`); a finished row is left alone."""
    async with pool.connection() as conn:
        await conn.execute(
            _STEP,
            {
                "operation_id": at.operation_id,
                "step": at.step,
                "attempt": at.attempt,
                "workflow_id": at.workflow_id,
                "run_id": at.run_id,
                "detail": Jsonb({"run_id": at.run_id}),
            },
        )


async def step_finished(pool: AsyncConnectionPool, at: StepOf, error: str | None) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            _EVENT,
            {
                "operation_id": at.operation_id,
                "step": at.step,
                "event": "step.failed" if error else "step.finished",
                "attempt": at.attempt,
                "detail": Jsonb({"error": error} if error else {}),
            },
        )


async def record_renewal(
    pool: AsyncConnectionPool, at: StepOf, new_expiry: str, registry_transaction_id: str | None
) -> None:
    """DESIGN §3 step 5, as the registry renew returns: the row is `done` with the new expiry,
    the registry transaction and the amount charged under the key (one statement)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _RECORD,
            {
                "operation_id": at.operation_id,
                "attempt": at.attempt,
                "workflow_id": at.workflow_id,
                "run_id": at.run_id,
                "new_expiry": new_expiry,
                "registry_transaction_id": registry_transaction_id,
                "detail": Jsonb({"run_id": at.run_id, "error_code": None}),
            },
        )
        row = await cur.fetchone()
    if row is not None:
        observe_renewal("temporal", row[0], row[1], row[2])


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
