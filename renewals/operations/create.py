"""Creating an operation: claiming its renewal's key, inserting the row, logging its events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
async def claim_keys(conn: Conn, claims: Sequence[tuple[RenewalRequest, Engine]]) -> set[str]:
    """`claim_key` for many renewals in one statement (in the caller's transaction): the keys
    claimed. Keys are claimed in sorted order, so two batches sharing keys never deadlock."""
    ordered = sorted(claims, key=lambda c: c[0].idempotency_key)
    cur = await conn.execute(
        "INSERT INTO renewal_keys (idempotency_key, operation_id, engine)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
        (
            [r.idempotency_key for r, _ in ordered],
            [r.operation_id for r, _ in ordered],
            [e.value for _, e in ordered],
        ),
    )
    return {row[0] for row in await cur.fetchall()}


async def owners(conn: Conn, keys: Sequence[str]) -> dict[str, Operation]:
    """The operation that owns each of these renewal keys (those that have one)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT o.* FROM renewal_keys k JOIN operations o USING (operation_id)"
        " WHERE k.idempotency_key = ANY(%s)",
        (list(keys),),
    )
    return {row["idempotency_key"]: Operation.from_row(row) for row in await cur.fetchall()}


async def taken_ids(conn: Conn, requests: Sequence[RenewalRequest]) -> dict[str, str]:
    """Of these requests' operation ids, those already in use: id → the key it has."""
    cur = await conn.execute(
        "SELECT operation_id, idempotency_key FROM operations WHERE operation_id = ANY(%s)",
        ([r.operation_id for r in requests],),
    )
    return {row[0]: row[1] for row in await cur.fetchall()}


# -- a router-made operation: one statement --------------------------------------------------
@dataclass(frozen=True)
class Routed:
    """The routing decision a router-made operation is created with (DESIGN §4: made once per
    key, stored with the flag state it came from, in the same statement as the operation)."""

    mode: str
    bucket: int | None
    rollout: int | None
    flag_source: str
    flag_state: Mapping[str, Any]
    reason: str


_CREATE_ROUTED = """
WITH claimed AS (
INSERT INTO renewal_keys (idempotency_key, operation_id, engine)
VALUES (%(idempotency_key)s, %(operation_id)s, %(engine)s)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key),
inserted AS (
INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status, workflow_id)
SELECT %(operation_id)s, %(idempotency_key)s, %(domain)s, %(tld)s, %(years)s,
       %(current_expiry)s, %(customer_id)s, %(engine)s, 'router', 'todo', %(workflow_id)s
FROM claimed RETURNING *),
logged AS (
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, 'created', jsonb_build_object('engine', engine, 'origin', origin)
FROM inserted),
decided AS (
INSERT INTO routing_decisions (idempotency_key, operation_id, domain, tld, current_expiry, years,
                               customer_id, mode, engine, bucket, rollout, flag_source,
                               flag_state, reason)
SELECT %(idempotency_key)s, %(operation_id)s, %(domain)s, %(tld)s, %(current_expiry)s,
       %(years)s, %(customer_id)s, %(mode)s, %(engine)s, %(bucket)s, %(rollout)s,
       %(flag_source)s, %(flag_state)s, %(reason)s
FROM claimed
ON CONFLICT (idempotency_key) DO UPDATE SET  -- a decision left by an operation since deleted
    operation_id = excluded.operation_id, mode = excluded.mode, engine = excluded.engine,
    bucket = excluded.bucket, rollout = excluded.rollout, flag_source = excluded.flag_source,
    flag_state = excluded.flag_state, reason = excluded.reason, decided_at = now())
SELECT * FROM inserted
"""
_OWNER_ROUTED = """
SELECT o.*, d.mode AS routed_mode FROM renewal_keys k JOIN operations o USING (operation_id)
LEFT JOIN routing_decisions d ON d.idempotency_key = k.idempotency_key
WHERE k.idempotency_key = %s
"""


async def create_routed(
    conn: Conn,
    request: RenewalRequest,
    engine: Engine,
    routed: Routed,
    *,
    workflow_id: str | None = None,
) -> Operation | None:
    """The router's create, in one statement (one round trip on an autocommit connection):
    claim the renewal's key, insert the `todo` row (event `created`) and record its routing
    decision. None when the key has an owner already (then nothing is written): a concurrent
    creator of the same key (the batch, another submit) is waited for, then met."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        _CREATE_ROUTED,
        {
            "operation_id": request.operation_id,
            "idempotency_key": request.idempotency_key,
            "domain": request.domain,
            "tld": request.tld,
            "years": request.years,
            "current_expiry": request.current_expiry,
            "customer_id": request.customer_id,
            "engine": engine.value,
            "workflow_id": workflow_id,
            "mode": routed.mode,
            "bucket": routed.bucket,
            "rollout": routed.rollout,
            "flag_source": routed.flag_source,
            "flag_state": Jsonb(dict(routed.flag_state)),
            "reason": routed.reason,
        },
    )
    row = await cur.fetchone()
    return Operation.from_row(row) if row else None


async def owner_routed(conn: Conn, idempotency_key: str) -> tuple[Operation, str | None] | None:
    """The operation that owns the key, and the mode the router gave it (None when the router
    did not make it: the upstream batch, an import)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_OWNER_ROUTED, (idempotency_key,))
    row = await cur.fetchone()
    return (Operation.from_row(row), row["routed_mode"]) if row else None


# -- inserting an operation -------------------------------------------------------------------
_INSERT_MANY = """
WITH inserted AS (
INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status, workflow_id)
SELECT r.operation_id, r.idempotency_key, r.domain, r.tld, r.years, r.current_expiry,
       r.customer_id, %(engine)s, %(origin)s, 'todo', w.workflow_id
FROM unnest(%(operation_id)s::text[], %(idempotency_key)s::text[], %(domain)s::text[],
            %(tld)s::text[], %(years)s::int[], %(current_expiry)s::date[],
            %(customer_id)s::text[]) WITH ORDINALITY AS r(operation_id, idempotency_key, domain,
                                                          tld, years, current_expiry,
                                                          customer_id, n)
JOIN unnest(%(workflow_id)s::text[]) WITH ORDINALITY AS w(workflow_id, n) USING (n)
ORDER BY r.n
RETURNING *),
logged AS (
INSERT INTO operation_events (operation_id, event, detail)
SELECT operation_id, 'created', jsonb_build_object('engine', engine, 'origin', origin)
FROM inserted)
SELECT * FROM inserted
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
    (made,) = await insert_many(conn, [request], engine, origin=origin, workflow_ids=[workflow_id])
    return made


async def insert_many(
    conn: Conn,
    requests: Sequence[RenewalRequest],
    engine: Engine,
    *,
    origin: Origin = Origin.ROUTER,
    workflow_ids: Sequence[str | None] | None = None,
) -> list[Operation]:
    """`insert` for many renewals of one engine in one statement (in the caller's
    transaction), in their order."""
    if not requests:
        return []
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        _INSERT_MANY,
        {
            "operation_id": [r.operation_id for r in requests],
            "idempotency_key": [r.idempotency_key for r in requests],
            "domain": [r.domain for r in requests],
            "tld": [r.tld for r in requests],
            "years": [r.years for r in requests],
            "current_expiry": [r.current_expiry for r in requests],
            "customer_id": [r.customer_id for r in requests],
            "workflow_id": list(workflow_ids or [None] * len(requests)),
            "engine": engine.value,
            "origin": origin.value,
        },
    )
    by_id = {row["operation_id"]: Operation.from_row(row) for row in await cur.fetchall()}
    return [by_id[r.operation_id] for r in requests]


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
