"""Cancel, and back to work: requeue (legacy) and relaunch (reopen, the new run, restore)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from renewals.errors import OperationNotFound, RenewalTaken
from renewals.model import (
    HAS_RENEWAL,
    Operation,
    OperationStatus,
)
from renewals.operations.create import log_event
from renewals.operations.reads import GATE_SQL, TERMINAL_SQL, Conn, Gate, gate_of

# -- cancel ----------------------------------------------------------------------------------
_FLAG_CANCEL = """
WITH flagged AS (
UPDATE operations SET cancel_requested_at = coalesce(cancel_requested_at, now()),
       status = CASE WHEN %(final)s THEN 'cancelled' ELSE status END,
       finished_at = CASE WHEN %(final)s THEN now() ELSE finished_at END,
       updated_at = now()
WHERE operation_id = %(op)s RETURNING *),
logged AS (
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, %(event)s, %(detail)s FROM flagged)
SELECT * FROM flagged
"""


async def flag_cancel(
    conn: Conn, operation_id: str, detail: Mapping[str, Any], *, now_final: bool = False
) -> Operation:
    """Flag the row for cancellation (its engine honours the flag before any side effect);
    with `now_final` it is `cancelled` at once (nothing of it ever ran). Event `cancelled` or
    `cancel_requested`."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(  # one statement: atomic on an autocommit connection too
        _FLAG_CANCEL,
        {
            "final": now_final,
            "op": operation_id,
            "event": "cancelled" if now_final else "cancel_requested",
            "detail": Jsonb(dict(detail)),
        },
    )
    row = await cur.fetchone()
    if row is None:
        raise OperationNotFound(operation_id)
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


_RERUN = """
WITH moved AS (
    UPDATE operations SET status = 'doing', workflow_id = %(workflow_id)s, run_id = %(run_id)s,
           error_code = NULL, error_message = NULL, finished_at = NULL, updated_at = now()
    WHERE operation_id = %(operation_id)s AND status = 'failed'
    RETURNING operation_id)
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, 'workflow.rerun', %(detail)s FROM moved
"""


async def rerun(
    pool: AsyncConnectionPool, operation_id: str, workflow_id: str, run_id: str
) -> Gate:
    """A run working on a `failed` row is a Temporal reset's (a relaunch reopens the row before
    its run starts): the row goes back to work as a relaunch puts it, its key taken back
    (`doing` under this run, event `workflow.rerun`), so no other operation claims the key
    while the run renews. When another operation has the renewal now, the row stays failed and
    the gate names it: the run ends superseded. Returns the gate, read after the move."""
    async with pool.connection() as conn, conn.transaction():
        try:
            await _may_reopen(conn, operation_id)
        except RenewalTaken as exc:
            cur = await conn.execute(GATE_SQL, {"operation_id": operation_id})
            read = gate_of(await cur.fetchone())
            return Gate(read.cancel_requested, exc.owner, read.status)
        await conn.execute(
            _RERUN,
            {
                "operation_id": operation_id,
                "workflow_id": workflow_id,
                "run_id": run_id,
                "detail": Jsonb({"run_id": run_id}),
            },
        )
        cur = await conn.execute(GATE_SQL, {"operation_id": operation_id})
        return gate_of(await cur.fetchone())
