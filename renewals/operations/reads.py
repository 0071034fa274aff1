"""Reads of the operations table, each giving an `Operation` (or a fact about one), and the
gate a Temporal renewal reads before each side effect; the status lists as SQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from renewals.errors import OperationNotFound
from renewals.model import (
    HAS_RENEWAL,
    TERMINAL,
    Engine,
    Operation,
    OperationStatus,
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
    engine's operation that has the renewal (live or done; this one is then superseded); and
    the row's status as read (a `failed` row a run works on is a reset run's: it reopens it)."""

    cancel_requested: bool
    superseded_by: str | None
    status: str | None = None


GATE_SQL = f"""
SELECT o.cancel_requested_at IS NOT NULL AS cancel_requested,
       CASE WHEN o.status = 'superseded' THEN o.superseded_by
            ELSE (SELECT other.operation_id FROM operations other
                  WHERE other.idempotency_key = o.idempotency_key AND other.engine <> o.engine
                    AND other.status IN {HAS_RENEWAL_SQL}
                  ORDER BY other.created_at LIMIT 1)
       END AS superseded_by,
       o.status
FROM operations o WHERE o.operation_id = %(operation_id)s
"""


def gate_of(row: tuple[Any, ...] | None) -> Gate:
    return Gate(bool(row[0]), row[1], row[2]) if row else Gate(False, None)


async def gate(pool: AsyncConnectionPool, operation_id: str) -> Gate:
    """Read before each side effect of a Temporal renewal (one statement; `step_started`
    returns it too, so a step that records its start reads it in the same round trip)."""
    async with pool.connection() as conn:
        cur = await conn.execute(GATE_SQL, {"operation_id": operation_id})
        return gate_of(await cur.fetchone())


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
