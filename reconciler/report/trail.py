"""What each TLD's readiness verdict is decided on: its trail of full runs since its flag last
changed.

A TLD's trail is built from the last N (`DUALRUN_REPORT_RUNS`) full runs that finished ok and
whose window starts at or after the TLD's last rollout event (any change of its flag: `rollout
next|back`, the guard, `flags set|on|off`). Evidence gathered at another step, or before the
flag was off and on again, never counts for the step the TLD is at now. Changes made outside
dualrun (by hand in the Unleash UI) are no rollout events: they are not seen.

Critical findings count when found by those runs, or seen (by a sweep, say) after the change.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from reconciler.report.model import Trail

UNKNOWN = "unknown"  # findings without a TLD: they weigh on every TLD

_CHANGES = "SELECT tld, max(at) AS at FROM rollout_events GROUP BY tld"
_RUNS = """
SELECT run_id FROM reconciliation_runs
WHERE run_id <= %(run)s AND kind <> 'sweep' AND status = 'ok'
  AND (%(since)s::timestamptz IS NULL OR window_start >= %(since)s::timestamptz)
ORDER BY run_id DESC LIMIT %(runs)s
"""
# The distinct operations of the runs' windows (windows of manual reruns may overlap).
_OPS = """
WITH w AS (SELECT window_start, window_end FROM reconciliation_runs WHERE run_id = ANY(%(ids)s)),
o AS (SELECT * FROM operations o  -- the outer bounds let the created_at index narrow it
      WHERE o.created_at >= (SELECT min(window_start) FROM w)
        AND o.created_at < (SELECT max(window_end) FROM w)
        AND EXISTS (SELECT 1 FROM w WHERE o.created_at >= w.window_start
                                      AND o.created_at < w.window_end))
SELECT o.tld,
       count(*) FILTER (WHERE o.engine = 'temporal' AND o.status = 'done') AS temporal_done,
       count(*) FILTER (WHERE o.engine = 'temporal' AND o.status = 'failed') AS temporal_failed
FROM o WHERE o.tld = ANY(%(tlds)s) GROUP BY o.tld
"""
# The shadow comparisons of the runs' windows, decided by the report's run.
_SHADOW = """
WITH w AS (SELECT window_start, window_end FROM reconciliation_runs WHERE run_id = ANY(%(ids)s))
SELECT c.tld,
       count(*) FILTER (WHERE c.pair = 'legacy'
                        AND c.class IN ('agree', 'business_mismatch')) AS compared,
       count(*) FILTER (WHERE c.pair = 'legacy' AND c.class = 'business_mismatch') AS mismatched,
       count(*) FILTER (WHERE c.pair = 'aa'
                        AND c.class IN ('agree', 'business_mismatch')) AS aa_compared,
       count(*) FILTER (WHERE c.pair = 'aa' AND c.class = 'business_mismatch') AS aa_mismatched
FROM shadow_comparisons c
WHERE c.decided_run_id <= %(run)s AND c.tld = ANY(%(tlds)s)
  AND c.created_at >= (SELECT min(window_start) FROM w)
  AND c.created_at < (SELECT max(window_end) FROM w)
  AND EXISTS (SELECT 1 FROM w WHERE c.created_at >= w.window_start
                                AND c.created_at < w.window_end)
GROUP BY c.tld
"""
# A critical finding belongs to the trail when its life (first..last run) overlaps the runs, or
# it was seen after the change (a sweep's, between two full runs).
_CRITICAL = """
SELECT coalesce(tld, 'unknown') AS tld,
       count(*) FILTER (WHERE engine IS DISTINCT FROM 'legacy') AS critical,
       count(*) FILTER (WHERE engine = 'legacy') AS critical_legacy
FROM findings
WHERE severity = 'critical' AND coalesce(tld, 'unknown') = ANY(%(tlds)s)
  AND first_run_id <= %(run)s
  AND (last_run_id >= %(first)s
       OR (%(since)s::timestamptz IS NOT NULL AND last_seen_at >= %(since)s::timestamptz))
GROUP BY 1
"""


async def _rows(conn: AsyncConnection[Any], sql: str, **params: Any) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


async def last_changes(conn: AsyncConnection[Any]) -> dict[str, dt.datetime]:
    """Each TLD's last rollout event: when its flag last changed."""
    return {r["tld"]: r["at"] for r in await _rows(conn, _CHANGES)}


async def trails(
    conn: AsyncConnection[Any], run_id: int, runs: int, tlds: Iterable[str]
) -> tuple[Trail, ...]:
    """The trail of each TLD (and of findings without one) as of run `run_id`."""
    changes = await last_changes(conn)
    names = sorted({*tlds, UNKNOWN})
    groups: dict[dt.datetime | None, list[str]] = defaultdict(list)
    for tld in names:
        groups[changes.get(tld)].append(tld)
    out: list[Trail] = []
    for since, members in groups.items():
        ids = [r["run_id"] for r in await _rows(conn, _RUNS, run=run_id, since=since, runs=runs)]
        figures = await _figures(conn, run_id, ids, members, since) if ids else {}
        out += [
            Trail(tld, len(ids), **figures.get(tld, {}), since_change=since, run_ids=tuple(ids))
            for tld in members
        ]
    return tuple(sorted(out, key=lambda t: t.tld))


async def _figures(
    conn: AsyncConnection[Any],
    run_id: int,
    ids: list[int],
    tlds: list[str],
    since: dt.datetime | None,
) -> dict[str, dict[str, int]]:
    by_tld: dict[str, dict[str, int]] = defaultdict(dict)
    for r in await _rows(conn, _OPS, ids=ids, tlds=tlds):
        by_tld[r["tld"]].update(
            temporal_done=r["temporal_done"], temporal_failed=r["temporal_failed"]
        )
    for r in await _rows(conn, _SHADOW, ids=ids, run=run_id, tlds=tlds):
        by_tld[r["tld"]].update(
            shadow_compared=r["compared"],
            shadow_mismatched=r["mismatched"],
            aa_compared=r["aa_compared"],
            aa_mismatched=r["aa_mismatched"],
        )
    for r in await _rows(conn, _CRITICAL, tlds=tlds, first=min(ids), run=run_id, since=since):
        by_tld[r["tld"]].update(critical=r["critical"], critical_legacy=r["critical_legacy"])
    return by_tld
