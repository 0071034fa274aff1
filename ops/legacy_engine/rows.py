"""The legacy robots' SQL on the operations table: claiming a ready row, writing under the
lease, and what work is left. The robots (`robots.py`) decide; this module reads and writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

# A ready row: due, or held by a robot whose lease ran out. The status list repeats the partial
# indexes' predicate, which lets PostgreSQL walk operations_legacy_ready_idx and
# operations_legacy_ready_tld_idx in claim order (migration 0014) instead of sorting every row.
_READY = """engine = 'legacy' AND status IN ('todo', 'error', 'doing')
      AND ((status IN ('todo', 'error') AND next_attempt_at <= now())
           OR (status = 'doing' AND lease_expires_at < now()))"""
# The oldest ready row.
_NEXT_ANY = f"""
    SELECT operation_id, status AS previous_status FROM operations
    WHERE {_READY}
    ORDER BY next_attempt_at, created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED"""
# Paced: the oldest of each named TLD's oldest ready row (a short walk per TLD, however many
# rows the TLDs with no free place have waiting).
_NEXT_OF_TLDS = f"""
    SELECT c.operation_id, c.status AS previous_status
    FROM unnest(%(tlds)s::text[]) AS t(tld)
    CROSS JOIN LATERAL (
        SELECT operation_id, status, next_attempt_at, created_at FROM operations
        WHERE tld = t.tld AND {_READY}
        ORDER BY next_attempt_at, created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED) c
    ORDER BY c.next_attempt_at, c.created_at
    LIMIT 1"""
_CLAIM = """
WITH next AS ({next})
UPDATE operations o SET
    status = 'doing',
    attempts = o.attempts + CASE WHEN o.status = 'doing' THEN 0 ELSE 1 END,
    max_attempts = %(max_attempts)s,
    lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s),
    started_at = coalesce(o.started_at, now()),
    updated_at = now()
FROM next
WHERE o.operation_id = next.operation_id
RETURNING o.*, next.previous_status
"""
_CLAIM_ANY = _CLAIM.format(next=_NEXT_ANY)
_CLAIM_OF_TLDS = _CLAIM.format(next=_NEXT_OF_TLDS)
_EVENT = (
    "INSERT INTO operation_events (operation_id, step, event, attempt, detail)"
    " VALUES (%s, %s, %s, %s, %s)"
)
_OPEN = (
    "SELECT count(*) AS n FROM operations"
    " WHERE engine = 'legacy' AND status IN ('todo', 'doing', 'error')"
)


@dataclass(frozen=True)
class Rows:
    """Operation rows as the robots of one engine see them (their lease, their attempts)."""

    pool: AsyncConnectionPool
    lease_s: float
    max_attempts: int
    # An older robot: writes by operation id alone (see RobotConfig.stale_writes).
    stale_writes: bool = False

    async def claim(self, owner: str, tlds: list[str] | None = None) -> dict[str, Any] | None:
        """Take the oldest ready row (of `tlds`, when named) under `owner`'s lease; None if
        none is ready."""
        sql = _CLAIM_ANY if tlds is None else _CLAIM_OF_TLDS
        params = {
            "owner": owner,
            "lease": self.lease_s,
            "max_attempts": self.max_attempts,
            "tlds": tlds,
        }
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchone()

    async def write(
        self,
        row: Mapping[str, Any],
        owner: str,
        event: str,
        *,
        detail: Mapping[str, Any] | None = None,
        release: bool = False,
        finish: bool = False,
        retry_in_s: float | None = None,
        unless_cancelled: bool = False,
        **fields: Any,
    ) -> bool:
        """Update our operation while we hold it (extending the lease, or releasing it) and log
        the event; False when another robot holds it now (or, with `unless_cancelled`, when a
        cancel was requested)."""
        sets = [f"{name} = %({name})s" for name in fields]
        if release:
            sets.append("lease_owner = NULL, lease_expires_at = NULL")
        else:
            sets.append("lease_expires_at = now() + make_interval(secs => %(lease_s)s)")
        if finish:
            sets.append("finished_at = now()")
        if retry_in_s is not None:
            sets.append("next_attempt_at = now() + make_interval(secs => %(retry_in_s)s)")
        sets.append("updated_at = now()")
        guard = "" if self.stale_writes else "AND lease_owner = %(owner)s AND status = 'doing'"
        if unless_cancelled:
            guard += " AND cancel_requested_at IS NULL"
        params: dict[str, Any] = {
            **fields,
            "operation_id": row["operation_id"],
            "owner": owner,
            "lease_s": self.lease_s,
            "retry_in_s": retry_in_s,
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE operations SET {', '.join(sets)}"
                f" WHERE operation_id = %(operation_id)s {guard}",
                params,
            )
            if cur.rowcount == 0:
                return False
            await conn.execute(
                _EVENT,
                (
                    row["operation_id"],
                    fields.get("step", row["step"]),
                    event,
                    row["attempts"],
                    Jsonb({"robot": owner, **{k: str(v) for k, v in (detail or {}).items()}}),
                ),
            )
        return True

    async def cancel_requested(self, operation_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT cancel_requested_at IS NOT NULL FROM operations WHERE operation_id = %s",
                (operation_id,),
            )
            row = await cur.fetchone()
        return bool(row and row[0])

    async def open_work(self) -> int:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_OPEN)
            row = await cur.fetchone()
        return int(row["n"]) if row else 0
