"""The Temporal workflow's row sync: one statement per write (the hot path), the renew lease,
and how a run started or ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from renewals.metrics import observe_renewal
from renewals.model import (
    Engine,
    OperationStatus,
    Step,
)
from renewals.operations.reads import GATE_SQL, TERMINAL_SQL, Gate, gate_of


# -- the Temporal workflow's row sync (one statement each: the hot path) ---------------------
@dataclass(frozen=True)
class StepOf:
    """Which operation, workflow run, step and attempt an activity's step write is about."""

    operation_id: str
    step: Step
    attempt: int
    workflow_id: str
    run_id: str


_STEP_STARTED = f"""
WITH before AS (
    SELECT operation_id, status FROM operations
    WHERE operation_id = %(operation_id)s AND status NOT IN {TERMINAL_SQL}
    FOR UPDATE),
moved AS (
    UPDATE operations o SET status = 'doing', step = %(step)s,
           workflow_id = %(workflow_id)s, run_id = %(run_id)s,
           started_at = coalesce(o.started_at, now()), updated_at = now()
    FROM before WHERE o.operation_id = before.operation_id
    RETURNING o.operation_id, before.status AS was),
logged AS (
    INSERT INTO operation_events (operation_id, step, event, attempt, detail)
    SELECT operation_id, NULL, 'workflow.doing', NULL, %(detail)s FROM moved WHERE was <> 'doing'
    UNION ALL
    SELECT operation_id, %(step)s, 'step.started', %(attempt)s, '{{}}'::jsonb FROM moved)
{GATE_SQL}"""
_STEP_FINISHED = """
WITH released AS (  -- a renew that ended (in error) no longer holds its lease
    UPDATE operations SET renew_lease_until = NULL
    WHERE operation_id = %(operation_id)s AND %(step)s = 'renew' AND renew_lease_run = %(run_id)s)
INSERT INTO operation_events (operation_id, step, event, attempt, detail)
SELECT %(operation_id)s, %(step)s, %(event)s, %(attempt)s, %(detail)s
WHERE EXISTS (SELECT 1 FROM operations WHERE operation_id = %(operation_id)s)
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
       renew_lease_until = CASE WHEN renew_lease_run = %(run_id)s THEN NULL
                                ELSE renew_lease_until END,
       started_at = coalesce(started_at, now()), finished_at = now(), updated_at = now()
WHERE operation_id = %(operation_id)s
RETURNING operation_id, tld, created_at, finished_at),
logged AS (
INSERT INTO operation_events (operation_id, step, event, attempt, detail)
SELECT operation_id, 'renew', 'step.finished', %(attempt)s, %(step_detail)s FROM synced
UNION ALL
SELECT operation_id, NULL, 'workflow.done', NULL, %(detail)s FROM synced)
SELECT tld, created_at, finished_at FROM synced
"""


async def step_started(pool: AsyncConnectionPool, at: StepOf) -> Gate:
    """The row is `doing`, in this step, under this run. The first step of a run moves the row
    to `doing` (event `workflow.doing`); a finished row is left alone. Returns the row's gate
    as it was when the step started (the same statement: no second round trip)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _STEP_STARTED,
            {
                "operation_id": at.operation_id,
                "step": at.step,
                "attempt": at.attempt,
                "workflow_id": at.workflow_id,
                "run_id": at.run_id,
                "detail": Jsonb({"run_id": at.run_id}),
            },
        )
        return gate_of(await cur.fetchone())


async def step_finished(pool: AsyncConnectionPool, at: StepOf, error: str | None) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            _STEP_FINISHED,
            {
                "operation_id": at.operation_id,
                "run_id": at.run_id,
                "step": at.step,
                "event": "step.failed" if error else "step.finished",
                "attempt": at.attempt,
                "detail": Jsonb({"error": error} if error else {}),
            },
        )


async def record_renewal(
    pool: AsyncConnectionPool,
    at: StepOf,
    new_expiry: str,
    registry_transaction_id: str | None,
    *,
    from_registry_record: bool = False,
) -> None:
    """DESIGN §3 step 5, as the registry renew returns: the row is `done` with the new expiry,
    the registry transaction and the amount charged under the key. `from_registry_record`: the
    renew found its renewal in the registry's record (a retry, a timeout, a rerun) instead of
    making it; the renew step's event says so."""
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
                "step_detail": Jsonb(
                    {"resolved_from_registry_record": True} if from_registry_record else {}
                ),
            },
        )
        row = await cur.fetchone()
    if row is not None:
        observe_renewal(Engine.TEMPORAL, row[0], row[1], row[2])


_RENEW_LEASE = """
WITH current AS (
    SELECT renew_lease_run, renew_lease_until FROM operations
    WHERE operation_id = %(op)s FOR UPDATE),
took AS (
    UPDATE operations o SET renew_lease_run = %(run)s,
           renew_lease_until = now() + make_interval(secs => %(seconds)s)
    FROM current
    WHERE o.operation_id = %(op)s
      AND (current.renew_lease_until IS NULL OR current.renew_lease_until < now()
           OR current.renew_lease_run = %(run)s)
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM took) OR NOT EXISTS (SELECT 1 FROM current) AS taken,
       (SELECT extract(epoch FROM renew_lease_until - now()) FROM current) AS left_s
"""


async def take_renew_lease(
    pool: AsyncConnectionPool, operation_id: str, run_id: str, seconds: float
) -> float | None:
    """Before a run's registry renew: None when it may renew (no other run's renew may still
    be in flight), else the seconds until the other run's lease ends (one statement)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _RENEW_LEASE, {"op": operation_id, "run": run_id, "seconds": seconds}
        )
        row = await cur.fetchone()
    if row is None or row[0]:
        return None
    return max(float(row[1] or 0.0), 0.1)


@dataclass(frozen=True)
class RunEnd:
    """How a workflow run ended, as its row records it (`doing`: a run started, old path)."""

    operation_id: str
    status: OperationStatus
    workflow_id: str
    run_id: str
    new_expiry: str | None = None
    registry_transaction_id: str | None = None
    charged_cents: int | None = None
    refunded_cents: int | None = None
    currency: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    superseded_by: str | None = None


_RUN_STARTED = f"""
WITH synced AS (
UPDATE operations SET status = 'doing', workflow_id = %(workflow_id)s, run_id = %(run_id)s,
       started_at = coalesce(started_at, now()), updated_at = now()
WHERE operation_id = %(operation_id)s AND status NOT IN {TERMINAL_SQL}
RETURNING operation_id)
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, %(event)s, %(detail)s FROM synced
"""
_RUN_ENDED = """
WITH synced AS (
UPDATE operations SET status = %(status)s, workflow_id = %(workflow_id)s, run_id = %(run_id)s,
       new_expiry = coalesce(%(new_expiry)s::date, new_expiry),
       registry_transaction_id = coalesce(%(registry_transaction_id)s, registry_transaction_id),
       charged_cents = coalesce(%(charged_cents)s, charged_cents),
       refunded_cents = coalesce(%(refunded_cents)s, refunded_cents),
       currency = coalesce(%(currency)s, currency),
       error_code = %(error_code)s, error_message = %(error_message)s,
       superseded_by = coalesce(%(superseded_by)s, superseded_by),
       step = CASE WHEN %(status)s = 'done' THEN 'record' ELSE step END,
       finished_at = now(), updated_at = now()
WHERE operation_id = %(operation_id)s
RETURNING operation_id, tld, created_at, finished_at),
logged AS (
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, %(event)s, %(detail)s FROM synced)
SELECT tld, created_at, finished_at FROM synced
"""


async def record_run(pool: AsyncConnectionPool, end: RunEnd) -> None:
    """A run started (`doing`) or ended (done, failed, cancelled) with its outcome."""
    params: dict[str, Any] = {
        "operation_id": end.operation_id,
        "workflow_id": end.workflow_id,
        "run_id": end.run_id,
        "status": end.status,
        "new_expiry": end.new_expiry,
        "registry_transaction_id": end.registry_transaction_id,
        "charged_cents": end.charged_cents,
        "refunded_cents": end.refunded_cents,
        "currency": end.currency,
        "error_code": end.error_code,
        "error_message": (end.error_message or "")[:500] or None,
        "superseded_by": end.superseded_by,
        "event": f"workflow.{end.status.value}",
        "detail": Jsonb({"run_id": end.run_id, "error_code": end.error_code}),
    }
    async with pool.connection() as conn:
        if not end.status.terminal:
            await conn.execute(_RUN_STARTED, params)
            return
        cur = await conn.execute(_RUN_ENDED, params)
        row = await cur.fetchone()
    if row is not None and end.status == OperationStatus.DONE:
        observe_renewal(Engine.TEMPORAL, row[0], row[1], row[2])
