"""Routing decisions in the database: claimed once per idempotency key, then only read.

`claim` is `INSERT … ON CONFLICT DO NOTHING`: of any number of concurrent submissions of one
key (threads or processes), exactly one inserts; the others wait for its transaction on the
unique key and then read the winner's row.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from dualrun.routing.router import Decision
from renewals.errors import IdempotencyConflict, InvalidInput
from renewals.model import RenewalRequest

_CLAIM = """
INSERT INTO routing_decisions (idempotency_key, operation_id, domain, tld, current_expiry, years,
                               customer_id, mode, engine, bucket, rollout, flag_source,
                               flag_state, reason)
VALUES (%(idempotency_key)s, %(operation_id)s, %(domain)s, %(tld)s, %(current_expiry)s,
        %(years)s, %(customer_id)s, %(mode)s, %(engine)s, %(bucket)s, %(rollout)s,
        %(flag_source)s, %(flag_state)s, %(reason)s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key
"""


class OperationIdInUse(InvalidInput):
    """A caller-chosen operation_id already names another renewal."""

    def __init__(self, operation_id: str) -> None:
        super().__init__("operation_id", f"{operation_id} is already the id of another renewal")
        self.operation_id = operation_id


async def claim(conn: AsyncConnection[Any], request: RenewalRequest, decision: Decision) -> bool:
    """Store the decision unless the key has one; True when this call stored it."""
    cur = await conn.execute(
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
    return await cur.fetchone() is not None


async def stored(conn: AsyncConnection[Any], idempotency_key: str) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM routing_decisions WHERE idempotency_key = %s", (idempotency_key,)
    )
    row = await cur.fetchone()
    if row is None:  # only a claim rolled back in between; the caller retries
        raise LookupError(idempotency_key)
    return row


def check_same(request: RenewalRequest, row: dict[str, Any]) -> None:
    """Same key, other parameters: a conflict (raised before anything is written)."""
    for name, given in request.params().items():
        if row[name] != given:
            raise IdempotencyConflict(request.idempotency_key, name, row[name], given)


def request_of(row: dict[str, Any]) -> RenewalRequest:
    """The renewal as first decided (its operation id, its parameters)."""
    return RenewalRequest(
        domain=row["domain"],
        years=row["years"],
        current_expiry=row["current_expiry"],
        customer_id=row["customer_id"],
        operation_id=row["operation_id"],
    )
