"""The demo's figures (per engine) and its invariants, from the database and the findings."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from reconciler.model import Kind, RunSummary
from renewals.operations import TERMINAL_SQL

_ENGINES = f"""
SELECT engine, count(*) AS count,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE status NOT IN {TERMINAL_SQL}) AS unfinished,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
           FILTER (WHERE status = 'done') AS p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
           FILTER (WHERE status = 'done') AS p95_s
FROM operations WHERE domain LIKE %s GROUP BY engine ORDER BY engine
"""


async def open_count(pool: AsyncConnectionPool, run: str) -> tuple[int, int]:
    """(operations of this run, of which still unfinished)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE status NOT IN {TERMINAL_SQL})"
            " FROM operations WHERE domain LIKE %s",
            (f"m{run}-%",),
        )
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def shadow_plans(pool: AsyncConnectionPool, run: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM shadow_plans WHERE domain LIKE %s AND plan = 'a'", (f"m{run}-%",)
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def engines(pool: AsyncConnectionPool, run: str) -> dict[str, dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_ENGINES, (f"m{run}-%",))
        rows = await cur.fetchall()
    out = {}
    for r in rows:
        finished = r["done"] + r["failed"] + r["cancelled"]
        out[r["engine"]] = {
            "count": r["count"],
            "done": r["done"],
            "failed": r["failed"],
            "cancelled": r["cancelled"],
            "unfinished": r["unfinished"],
            "success_rate": round(r["done"] / finished, 4) if finished else None,
            "p50_s": round(r["p50_s"], 3) if r["p50_s"] is not None else None,
            "p95_s": round(r["p95_s"], 3) if r["p95_s"] is not None else None,
        }
    return out


def invariants(
    figures: dict[str, dict[str, Any]],
    reconciled: RunSummary,
    duplicated_keys: set[str],
    shadow_expected: int,
    shadow_recorded: int,
) -> dict[str, bool]:
    def temporal(kind: Kind) -> list[str]:
        return [
            f.key for f in reconciled.details if f.kind == kind and "temporal" in (f.engine or "")
        ]

    found_dups = {
        f.idempotency_key for f in reconciled.details if f.kind == Kind.DUPLICATE_OPERATION
    }
    return {
        "every_renewal_finished": all(e["unfinished"] == 0 for e in figures.values()),
        "no_temporal_double_renewal": not temporal(Kind.DOUBLE_RENEWAL),
        "no_temporal_double_charge": not temporal(Kind.DOUBLE_CHARGE),
        "every_legacy_duplicate_found": duplicated_keys <= found_dups,
        "every_shadow_plan_recorded": shadow_recorded >= shadow_expected,
    }
