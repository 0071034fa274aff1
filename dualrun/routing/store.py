"""Routing decisions in the database: made once per idempotency key, with the flag state they
came from, then only read.

The submit that claims the renewal's key records its decision: one submit in the same
statement as the operation (`renewals.operations.create_routed`), a batch in its transaction
(`record_many`). Of any number of concurrent creators of one key (threads, processes, the
upstream batch) exactly one claims it; the others wait for it, then meet its operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from dualrun.routing.router import Decision
from renewals.errors import IdempotencyConflict, InvalidInput
from renewals.model import Operation, RenewalRequest
from renewals.operations import Routed


class OperationIdInUse(InvalidInput):
    """A caller-chosen operation_id already names another renewal."""

    def __init__(self, operation_id: str) -> None:
        super().__init__("operation_id", f"{operation_id} is already the id of another renewal")
        self.operation_id = operation_id


def routed(decision: Decision) -> Routed:
    """The decision as its operation is created with it (`operations.create_routed`)."""
    return Routed(
        decision.mode.value,
        decision.bucket,
        decision.rollout,
        decision.source.value,
        decision.flag_state,
        decision.reason,
    )


_CLAIM_MANY = """
INSERT INTO routing_decisions (idempotency_key, operation_id, domain, tld, current_expiry, years,
                               customer_id, mode, engine, bucket, rollout, flag_source,
                               flag_state, reason)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::date[], %s::int[],
                     %s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::text[],
                     %s::jsonb[], %s::text[])
ON CONFLICT (idempotency_key) DO UPDATE SET
    operation_id = excluded.operation_id, mode = excluded.mode, engine = excluded.engine,
    bucket = excluded.bucket, rollout = excluded.rollout, flag_source = excluded.flag_source,
    flag_state = excluded.flag_state, reason = excluded.reason, decided_at = now()
"""


async def record_many(
    conn: AsyncConnection[Any], decided: Sequence[tuple[RenewalRequest, Decision]]
) -> None:
    """`record` for a batch, in one statement."""
    if not decided:
        return
    columns: list[list[Any]] = [[] for _ in range(14)]
    for request, decision in decided:
        row = (
            request.idempotency_key,
            request.operation_id,
            request.domain,
            request.tld,
            request.current_expiry,
            request.years,
            request.customer_id,
            decision.mode.value,
            decision.engine.value,
            decision.bucket,
            decision.rollout,
            decision.source.value,
            Jsonb(decision.flag_state),
            decision.reason,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await conn.execute(_CLAIM_MANY, columns)


async def stored_many(conn: AsyncConnection[Any], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The routing decisions of these keys (those the router made)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM routing_decisions WHERE idempotency_key = ANY(%s)", (list(keys),)
    )
    return {row["idempotency_key"]: row for row in await cur.fetchall()}


def check_same(request: RenewalRequest, existing: Operation) -> None:
    """Same key, other parameters: a conflict (raised before anything is written)."""
    for name, given in request.params().items():
        had = getattr(existing, name)
        if had != given:
            raise IdempotencyConflict(request.idempotency_key, name, had, given)
