"""The operations table (the source of truth): the only module of ours that writes `operations`
and `operation_events`.

Every write of dualrun's own code goes through here: the router's inserts, the Temporal
workflow's row sync (one statement per write, on the hot path), cancel, requeue and relaunch.
The reference legacy engine in `ops/` plays a system we do not own and keeps its own SQL.
Reads that return a row give an `Operation`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from renewals.errors import OperationNotFound, RenewalTaken
from renewals.metrics import observe_renewal
from renewals.model import (
    HAS_RENEWAL,
    TERMINAL,
    Engine,
    Operation,
    OperationStatus,
    Origin,
    RenewalRequest,
    Step,
)


def _sql_list(statuses: frozenset[OperationStatus]) -> str:
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(statuses)) + ")"


TERMINAL_SQL = _sql_list(TERMINAL)
"""The terminal statuses as an SQL list, for `status [NOT] IN {TERMINAL_SQL}`."""
HAS_RENEWAL_SQL = _sql_list(HAS_RENEWAL)
"""Statuses of an operation that has its renewal (live or done)."""

Conn = AsyncConnection[Any]


# -- reads -----------------------------------------------------------------------------------
async def get(pool: AsyncConnectionPool, operation_id: str) -> Operation:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM operations WHERE operation_id = %s", (operation_id,))
        row = await cur.fetchone()
    if row is None:
        raise OperationNotFound(operation_id)
    return Operation.from_row(row)


async def lock(conn: Conn, operation_id: str, engine: Engine | None = None) -> Operation:
    """The row, locked for the caller's transaction (FOR UPDATE)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM operations WHERE operation_id = %s"
        " AND (%s::text IS NULL OR engine = %s) FOR UPDATE",
        (operation_id, engine, engine),
    )
    row = await cur.fetchone()
    if row is None:
        raise OperationNotFound(operation_id)
    return Operation.from_row(row)


async def events(pool: AsyncConnectionPool, operation_id: str) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT * FROM operation_events WHERE operation_id = %s ORDER BY event_id",
            (operation_id,),
        )
        return await cur.fetchall()


async def charged(conn: Conn, operation_id: str) -> bool:
    """Whether any charge was made for the operation (a robot may have died right after it)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM billing_ledger WHERE operation_id = %s AND kind = 'charge')",
        (operation_id,),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class Gate:
    """What must stop an operation before a side effect: a cancel request, or another
    engine's operation that has the renewal (live or done; this one is then superseded)."""

    cancel_requested: bool
    superseded_by: str | None


_GATE_COLUMNS = f"""
SELECT o.cancel_requested_at IS NOT NULL AS cancel_requested,
       CASE WHEN o.status = 'superseded' THEN o.superseded_by
            ELSE (SELECT other.operation_id FROM operations other
                  WHERE other.idempotency_key = o.idempotency_key AND other.engine <> o.engine
                    AND other.status IN {HAS_RENEWAL_SQL}
                  ORDER BY other.created_at LIMIT 1)
       END AS superseded_by
FROM operations o WHERE o.operation_id = %(operation_id)s
"""


def _gate_of(row: tuple[Any, ...] | None) -> Gate:
    return Gate(bool(row[0]), row[1]) if row else Gate(False, None)


async def gate(pool: AsyncConnectionPool, operation_id: str) -> Gate:
    """Read before each side effect of a Temporal renewal (one statement; `step_started`
    returns it too, so a step that records its start reads it in the same round trip)."""
    async with pool.connection() as conn:
        cur = await conn.execute(_GATE_COLUMNS, {"operation_id": operation_id})
        return _gate_of(await cur.fetchone())


# -- creating an operation -------------------------------------------------------------------
_OWNER = """
SELECT o.* FROM renewal_keys k JOIN operations o USING (operation_id)
WHERE k.idempotency_key = %s FOR UPDATE OF k
"""


async def claim_key(conn: Conn, request: RenewalRequest, engine: Engine) -> Operation | None:
    """Claim the renewal's key for the operation about to be inserted, in the caller's
    transaction; the key's owner when it has one (then nothing is claimed). A concurrent
    creator of the same key (the batch, another submit) waits for this transaction, or this
    one for it."""
    cur = await conn.execute(
        "INSERT INTO renewal_keys (idempotency_key, operation_id, engine) VALUES (%s, %s, %s)"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1",
        (request.idempotency_key, request.operation_id, engine),
    )
    if await cur.fetchone() is not None:
        return None
    owner = conn.cursor(row_factory=dict_row)
    await owner.execute(_OWNER, (request.idempotency_key,))
    row = await owner.fetchone()
    return Operation.from_row(row) if row else None


# -- inserting an operation -------------------------------------------------------------------
_INSERT = """
INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status, workflow_id)
VALUES (%(operation_id)s, %(idempotency_key)s, %(domain)s, %(tld)s, %(years)s,
        %(current_expiry)s, %(customer_id)s, %(engine)s, %(origin)s, 'todo', %(workflow_id)s)
RETURNING *
"""


async def insert(
    conn: Conn,
    request: RenewalRequest,
    engine: Engine,
    *,
    origin: Origin = Origin.ROUTER,
    workflow_id: str | None = None,
) -> Operation:
    """Insert one `todo` operation row (event `created`) inside the caller's transaction."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        _INSERT,
        {
            "operation_id": request.operation_id,
            "idempotency_key": request.idempotency_key,
            "domain": request.domain,
            "tld": request.tld,
            "years": request.years,
            "current_expiry": request.current_expiry,
            "customer_id": request.customer_id,
            "engine": engine.value,
            "origin": origin.value,
            "workflow_id": workflow_id,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    await log_event(conn, request.operation_id, "created", {"engine": engine, "origin": origin})
    return Operation.from_row(row)


async def log_event(
    conn: Conn,
    operation_id: str,
    event: str,
    detail: Mapping[str, Any] | None = None,
    *,
    step: Step | None = None,
    attempt: int | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO operation_events (operation_id, step, event, attempt, detail)"
        " VALUES (%s, %s, %s, %s, %s)",
        (operation_id, step, event, attempt, Jsonb({k: v for k, v in (detail or {}).items()})),
    )


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
{_GATE_COLUMNS}"""
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
        return _gate_of(await cur.fetchone())


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


# -- cancel ----------------------------------------------------------------------------------
async def flag_cancel(
    conn: Conn, operation_id: str, detail: Mapping[str, Any], *, now_final: bool = False
) -> Operation:
    """Flag the row for cancellation (its engine honours the flag before any side effect);
    with `now_final` it is `cancelled` at once (nothing of it ever ran). Event `cancelled` or
    `cancel_requested`."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "UPDATE operations SET cancel_requested_at = coalesce(cancel_requested_at, now()),"
        " status = CASE WHEN %(final)s THEN 'cancelled' ELSE status END,"
        " finished_at = CASE WHEN %(final)s THEN now() ELSE finished_at END,"
        " updated_at = now() WHERE operation_id = %(op)s RETURNING *",
        {"final": now_final, "op": operation_id},
    )
    row = await cur.fetchone()
    if row is None:
        raise OperationNotFound(operation_id)
    await log_event(conn, operation_id, "cancelled" if now_final else "cancel_requested", detail)
    return Operation.from_row(row)


# -- back to work: requeue and relaunch ------------------------------------------------------
_KEY_OF = """
SELECT o.* FROM renewal_keys k JOIN operations o USING (operation_id)
WHERE k.idempotency_key = (SELECT idempotency_key FROM operations WHERE operation_id = %s)
FOR UPDATE OF k
"""


async def _may_reopen(conn: Conn, operation_id: str) -> None:
    """Before a row goes back to work: the renewal must not be with another operation now
    (RenewalTaken); this one takes its key back. Then the forward-only trigger is told this
    transaction puts a failed row back to work."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_KEY_OF, (operation_id,))
    row = await cur.fetchone()
    owner = Operation.from_row(row) if row else None
    if owner is not None and owner.operation_id != operation_id:
        if owner.status in HAS_RENEWAL:
            raise RenewalTaken(operation_id, owner.operation_id)
        await conn.execute(
            "UPDATE renewal_keys k SET operation_id = o.operation_id, engine = o.engine,"
            " claimed_at = now() FROM operations o"
            " WHERE o.operation_id = %s AND k.idempotency_key = o.idempotency_key",
            (operation_id,),
        )
    await conn.execute("SELECT set_config('dualrun.reopen', 'on', true)")


async def requeue(conn: Conn, operation_id: str) -> Operation:
    """Back to the legacy robots' queue: `todo`, attempts reset, lease and error cleared (in
    the caller's transaction). RenewalTaken when another operation has the renewal now."""
    await _may_reopen(conn, operation_id)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "UPDATE operations SET status = 'todo', attempts = 0, next_attempt_at = now(),"
        " lease_owner = NULL, lease_expires_at = NULL, error_code = NULL,"
        " error_message = NULL, finished_at = NULL, updated_at = now()"
        " WHERE operation_id = %s RETURNING *",
        (operation_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise OperationNotFound(operation_id)
    await log_event(conn, operation_id, "requeued")
    return Operation.from_row(row)


async def reopen(conn: Conn, operation_id: str, detail: Mapping[str, Any]) -> None:
    """A relaunch puts the row back to `todo` (event `relaunched`), so the new run's sync lands
    (in the caller's transaction). RenewalTaken when another operation has the renewal now."""
    await _may_reopen(conn, operation_id)
    await conn.execute(
        "UPDATE operations SET status = 'todo', error_code = NULL, error_message = NULL,"
        " finished_at = NULL, updated_at = now() WHERE operation_id = %s",
        (operation_id,),
    )
    await log_event(conn, operation_id, "relaunched", detail)


async def relaunched_run(conn: Conn, operation_id: str, workflow_id: str, run_id: str) -> None:
    """The relaunch was sent: the row (still `todo`) is `doing` under the new run."""
    await conn.execute(
        "UPDATE operations SET status = 'doing', workflow_id = %s, run_id = %s,"
        " started_at = coalesce(started_at, now()), updated_at = now()"
        " WHERE operation_id = %s AND status = 'todo'",
        (workflow_id, run_id, operation_id),
    )


async def restore(
    conn: Conn,
    operation_id: str,
    status: OperationStatus,
    error_code: str | None,
    detail: Mapping[str, Any],
) -> bool:
    """A relaunch that sent nothing gives the row (still `todo`) its status back, with event
    `relaunch.failed`; False when the row has moved on."""
    cur = await conn.execute(
        "UPDATE operations SET status = %(status)s,"
        " error_code = coalesce(%(code)s, 'RelaunchFailed'), error_message = %(message)s,"
        f" finished_at = CASE WHEN %(status)s IN {TERMINAL_SQL} THEN now() END,"
        " updated_at = now()"
        " WHERE operation_id = %(op)s AND status = 'todo' AND %(status)s <> 'todo' RETURNING 1",
        {
            "status": status,
            "code": error_code,
            "message": f"relaunch failed: {detail.get('error', '')}"[:500],
            "op": operation_id,
        },
    )
    if await cur.fetchone() is None:
        return False
    await log_event(conn, operation_id, "relaunch.failed", detail)
    return True


async def event_since(
    pool: AsyncConnectionPool, operation_id: str, event: str, since: dt.datetime
) -> bool:
    """Whether the operation logged `event` at or after `since`."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM operation_events WHERE operation_id = %s"
            " AND event = %s AND at >= %s)",
            (operation_id, event, since),
        )
        row = await cur.fetchone()
    return bool(row and row[0])
