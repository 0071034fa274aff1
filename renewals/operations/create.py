"""Creating an operation: claiming its renewal's key, inserting the row, logging its events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from renewals.model import (
    Engine,
    Operation,
    Origin,
    RenewalRequest,
    Step,
)
from renewals.operations.reads import Conn

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
