"""The operations table (the source of truth) as both engines read and write it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from renewals.errors import DualrunError
from renewals.model import Engine, OperationStatus, Outcome, RenewalRequest


class OperationNotFound(DualrunError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(f"operation_id: no operation {operation_id}")
        self.operation_id = operation_id


def outcome_from_row(row: Mapping[str, Any]) -> Outcome:
    return Outcome(
        operation_id=row["operation_id"],
        idempotency_key=row["idempotency_key"],
        domain=row["domain"],
        engine=Engine(row["engine"]),
        status=OperationStatus(row["status"]),
        years=row["years"],
        current_expiry=row["current_expiry"],
        step=row["step"],
        new_expiry=row["new_expiry"],
        registry_transaction_id=row["registry_transaction_id"],
        charged_cents=row["charged_cents"],
        refunded_cents=row["refunded_cents"],
        currency=row["currency"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


_INSERT = """
INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status, workflow_id)
VALUES (%(operation_id)s, %(idempotency_key)s, %(domain)s, %(tld)s, %(years)s,
        %(current_expiry)s, %(customer_id)s, %(engine)s, %(origin)s, %(status)s, %(workflow_id)s)
RETURNING *
"""


async def insert_operation(
    conn: AsyncConnection[Any],
    request: RenewalRequest,
    engine: Engine,
    *,
    origin: str = "router",
    status: OperationStatus = OperationStatus.TODO,
    workflow_id: str | None = None,
) -> dict[str, Any]:
    """Insert one operation row inside the caller's transaction."""
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
            "origin": origin,
            "status": status.value,
            "workflow_id": workflow_id,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    await cur.execute(
        "INSERT INTO operation_events (operation_id, event, detail) VALUES (%s, 'created', %s)",
        (request.operation_id, Jsonb({"engine": engine.value, "origin": origin})),
    )
    return row


class OperationStore:
    """Reads and step/terminal updates of operation rows, on an async pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def get(self, operation_id: str) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM operations WHERE operation_id = %s", (operation_id,))
            row = await cur.fetchone()
        if row is None:
            raise OperationNotFound(operation_id)
        return row

    async def outcome(self, operation_id: str) -> Outcome:
        return outcome_from_row(await self.get(operation_id))

    async def outcomes(
        self, since: dt.datetime, until: dt.datetime, engine: Engine | None = None
    ) -> list[Outcome]:
        """Every operation (of one engine) created in [since, until), in one set-based query."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT * FROM operations WHERE created_at >= %s AND created_at < %s"
                " AND (%s::text IS NULL OR engine = %s) ORDER BY created_at, operation_id",
                (since, until, engine, engine),
            )
            return [outcome_from_row(r) for r in await cur.fetchall()]

    async def events(self, operation_id: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT * FROM operation_events WHERE operation_id = %s ORDER BY event_id",
                (operation_id,),
            )
            return await cur.fetchall()

    async def update(
        self,
        operation_id: str,
        *,
        event: str | None = None,
        detail: Mapping[str, Any] | None = None,
        where: str = "",
        where_params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Set columns (and `updated_at`), optionally log an event; False when `where` failed."""
        assignments = ", ".join(f"{name} = %({name})s" for name in fields)
        sets = f"{assignments}, updated_at = now()" if assignments else "updated_at = now()"
        params: dict[str, Any] = {**fields, **(where_params or {}), "operation_id": operation_id}
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE operations SET {sets} WHERE operation_id = %(operation_id)s {where}",
                params,
            )
            if cur.rowcount == 0:
                return False
            if event is not None:
                await conn.execute(
                    "INSERT INTO operation_events (operation_id, step, event, attempt, detail)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (
                        operation_id,
                        fields.get("step"),
                        event,
                        fields.get("attempts"),
                        Jsonb(dict(detail or {})),
                    ),
                )
        return True
