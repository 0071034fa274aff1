"""Gauges of the state the reconciler watches, refreshed at the end of every run (sweeps too).

- `dualrun_stuck_operations{tld,engine}`: operations not finished within the deadline, counted
  over the whole table (not only the run's window), so the stuck-work alert sees a backlog as
  soon as the next sweep ends.
- `dualrun_reconcile_last_run_timestamp_seconds{kind}`: when a run of that kind last
  succeeded here; a stale sweep means duplicates are no longer being looked for.
"""

from __future__ import annotations

import datetime as dt
import threading

from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool

from renewals.operations import TERMINAL_SQL

STUCK_OPERATIONS = Gauge(
    "dualrun_stuck_operations",
    "Operations not finished within the deadline (the reconciler's stuck-after), "
    "as of the last reconciliation run",
    ["tld", "engine"],
)
LAST_RUN = Gauge(
    "dualrun_reconcile_last_run_timestamp_seconds",
    "Unix time the last successful reconciliation run of this kind finished in this process",
    ["kind"],
)

_STUCK = f"""
SELECT tld, engine, count(*) FROM operations
WHERE status NOT IN {TERMINAL_SQL} AND created_at < now() - %s
GROUP BY tld, engine
"""
_shown: set[tuple[str, str]] = set()
_lock = threading.Lock()


def show_stuck(counts: dict[tuple[str, str], int]) -> None:
    """Set the gauge per (tld, engine); a pair no longer stuck goes back to 0, not away."""
    with _lock:
        for tld, engine in _shown | counts.keys():
            STUCK_OPERATIONS.labels(tld=tld, engine=engine).set(counts.get((tld, engine), 0))
        _shown.update(counts)


async def stuck_counts(
    pool: AsyncConnectionPool, stuck_after: dt.timedelta
) -> dict[tuple[str, str], int]:
    async with pool.connection() as conn:
        cur = await conn.execute(_STUCK, (stuck_after,))
        return {(str(tld), str(engine)): int(n) for tld, engine, n in await cur.fetchall()}


async def refresh_stuck(pool: AsyncConnectionPool, stuck_after: dt.timedelta) -> None:
    show_stuck(await stuck_counts(pool, stuck_after))
