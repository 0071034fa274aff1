"""Routing decisions in the database: made once per idempotency key, with the flag state they
came from, then only read.

The submit that claims the renewal's key (`renewals.operations.claim_key`: of any number of
concurrent creators of one key, threads, processes or the upstream batch, exactly one claims
it; the others wait for its transaction and then meet its operation) records the decision.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from dualrun.routing.router import Decision
from renewals.errors import IdempotencyConflict, InvalidInput
from renewals.model import Operation, RenewalRequest

_CLAIM = """
INSERT INTO routing_decisions (idempotency_key, operation_id, domain, tld, current_expiry, years,
                               customer_id, mode, engine, bucket, rollout, flag_source,
                               flag_state, reason)
VALUES (%(idempotency_key)s, %(operation_id)s, %(domain)s, %(tld)s, %(current_expiry)s,
        %(years)s, %(customer_id)s, %(mode)s, %(engine)s, %(bucket)s, %(rollout)s,
        %(flag_source)s, %(flag_state)s, %(reason)s)
ON CONFLICT (idempotency_key) DO UPDATE SET
    operation_id = excluded.operation_id, mode = excluded.mode, engine = excluded.engine,
    bucket = excluded.bucket, rollout = excluded.rollout, flag_source = excluded.flag_source,
    flag_state = excluded.flag_state, reason = excluded.reason, decided_at = now()
"""


class OperationIdInUse(InvalidInput):
    """A caller-chosen operation_id already names another renewal."""

    def __init__(self, operation_id: str) -> None:
        super().__init__("operation_id", f"{operation_id} is already the id of another renewal")
        self.operation_id = operation_id


async def record(conn: AsyncConnection[Any], request: RenewalRequest, decision: Decision) -> None:
    """Store the decision of the renewal whose key this submit claimed (a decision left by an
    operation since deleted is replaced)."""
    await conn.execute(
        _CLAIM,
        {
            "idempotency_key": request.idempotency_key,
            "operation_id": request.operation_id,
            "domain": request.domain,
            "tld": request.tld,
            "current_expiry": request.current_expiry,
            "years": request.years,
            "customer_id": request.customer_id,
            "mode": decision.mode.value,
            "engine": decision.engine.value,
            "bucket": decision.bucket,
            "rollout": decision.rollout,
            "flag_source": decision.source.value,
            "flag_state": Jsonb(decision.flag_state),
            "reason": decision.reason,
        },
    )


async def stored(conn: AsyncConnection[Any], idempotency_key: str) -> dict[str, Any] | None:
    """The key's routing decision; None when the router did not make the operation (the
    upstream batch, an import)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM routing_decisions WHERE idempotency_key = %s", (idempotency_key,)
    )
    return await cur.fetchone()


def check_same(request: RenewalRequest, existing: Operation) -> None:
    """Same key, other parameters: a conflict (raised before anything is written)."""
    for name, given in request.params().items():
        had = getattr(existing, name)
        if had != given:
            raise IdempotencyConflict(request.idempotency_key, name, had, given)
