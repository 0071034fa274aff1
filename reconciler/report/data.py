"""The report's figures, each from one set-based statement over the run's window (and over the
windows of the last full runs for the trend; the readiness verdict's trail is trail.py's).

Shadow mismatches are the `shadow_mismatch` findings (stable key `shadow_mismatch:<key>`) found
by this run or an earlier one, so a report of any run, regenerated later, gives the same rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from reconciler.report.model import (
    Durations,
    EngineFigures,
    Figures,
    FindingRow,
    HistoryPoint,
    RolloutRow,
    RunInfo,
    ShadowFigures,
)
from reconciler.report.trail import trails
from renewals.errors import DualrunError
from renewals.operations import TERMINAL_SQL
from renewals.outcomes import TRANSIENT

MAX_FINDINGS = 200  # listed in the report; the counts cover them all


class RunNotFound(DualrunError):
    def __init__(self, run_id: int | None) -> None:
        super().__init__(
            "report: no reconciliation run yet"
            if run_id is None
            else f"report: no reconciliation run {run_id}"
        )
        self.run_id = run_id


_RUN = """
SELECT run_id, kind, status, window_start AS since, window_end AS until, started_at,
       finished_at, operations, counts, new_findings, error, unchecked
FROM reconciliation_runs WHERE run_id = %(run)s
"""
_LATEST = """
SELECT run_id FROM reconciliation_runs
ORDER BY (kind <> 'sweep') DESC, (status <> 'running') DESC, run_id DESC LIMIT 1
"""
_VOLUMES = f"""
WITH o AS (
    SELECT tld, engine, status, error_code,
           CASE WHEN finished_at IS NOT NULL
                THEN extract(epoch FROM finished_at - created_at)::float8 END AS secs
    FROM operations WHERE created_at >= %(since)s AND created_at < %(until)s)
SELECT tld, engine, count(*) AS total,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'failed' AND error_code = ANY(%(transient)s)) AS transient,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE status NOT IN {TERMINAL_SQL}) AS open,
       count(secs) AS finished, min(secs) AS min, max(secs) AS max,
       percentile_cont(ARRAY[0.25, 0.5, 0.75, 0.95, 0.99]) WITHIN GROUP (ORDER BY secs) AS pct
FROM o GROUP BY tld, engine ORDER BY tld, engine
"""
# A finding on several engines ("legacy,temporal") counts for each; no engine: "unknown".
_FINDINGS_BY_ENGINE = """
SELECT coalesce(f.tld, 'unknown') AS tld, e.engine, f.kind, count(*) AS n
FROM findings f
CROSS JOIN LATERAL unnest(string_to_array(coalesce(f.engine, 'unknown'), ',')) AS e(engine)
WHERE f.first_run_id = %(run)s OR f.last_run_id = %(run)s
GROUP BY 1, 2, 3
"""
_KINDS = """
SELECT kind, severity, count(*) AS n FROM findings
WHERE first_run_id = %(run)s OR last_run_id = %(run)s
GROUP BY kind, severity ORDER BY kind
"""
# The Temporal workflow of a finding: its Temporal operation's, else the shadow plan's (a shadow
# mismatch), else the idempotency key when the finding is on Temporal (the live workflow's id).
_FINDINGS = """
SELECT finding_key AS key, kind, severity, tld, engine, summary, idempotency_key,
       operation_ids, first_run_id = %(run)s AS new,
       coalesce(
         (SELECT o.workflow_id FROM operations o
          WHERE o.operation_id = ANY (f.operation_ids) AND o.engine = 'temporal'
            AND o.workflow_id IS NOT NULL ORDER BY o.created_at LIMIT 1),
         (SELECT p.workflow_id FROM shadow_plans p
          WHERE f.kind = 'shadow_mismatch' AND p.idempotency_key = f.idempotency_key),
         CASE WHEN 'temporal' = ANY (string_to_array(f.engine, ',')) THEN f.idempotency_key END
       ) AS workflow_id
FROM findings f WHERE first_run_id = %(run)s OR last_run_id = %(run)s
ORDER BY array_position(ARRAY['critical', 'warning', 'info'], severity), kind, finding_key
LIMIT %(limit)s
"""
# Shadow comparisons of the window's legacy operations, each counted in the class it had at the
# run (decided by then), else pending; plans against legacy, and the A/A sample's plan pairs.
_SHADOW = """
SELECT tld,
       count(*) FILTER (WHERE pair = 'legacy' AND decided AND class = 'agree') AS agreed,
       count(*) FILTER (WHERE pair = 'legacy' AND decided
                        AND class = 'business_mismatch') AS mismatched,
       count(*) FILTER (WHERE pair = 'legacy' AND decided
                        AND class = 'not_comparable') AS not_comparable,
       count(*) FILTER (WHERE pair = 'legacy' AND NOT decided) AS pending,
       count(*) FILTER (WHERE pair = 'aa' AND decided
                        AND class IN ('agree', 'business_mismatch')) AS aa_compared,
       count(*) FILTER (WHERE pair = 'aa' AND decided
                        AND class = 'business_mismatch') AS aa_mismatched,
       count(*) FILTER (WHERE pair = 'legacy' AND decided AND class = 'not_comparable'
                        AND reason LIKE 'plan %%') AS plan_failed
FROM (SELECT *, class <> 'pending' AND decided_run_id <= %(run)s AS decided
      FROM shadow_comparisons
      WHERE created_at >= %(since)s AND created_at < %(until)s) c
GROUP BY tld ORDER BY tld
"""
_HISTORY_RUNS = """
SELECT run_id, kind, window_start AS since, window_end AS until FROM reconciliation_runs
WHERE run_id <= %(run)s AND kind <> 'sweep' AND status = 'ok'
ORDER BY run_id DESC LIMIT %(runs)s
"""
_HISTORY_FINDINGS = """
SELECT r.run_id, f.severity, count(*) AS n
FROM unnest(%(ids)s::bigint[]) AS r(run_id)
JOIN findings f ON f.first_run_id = r.run_id OR f.last_run_id = r.run_id
GROUP BY r.run_id, f.severity
"""
_HISTORY_SHADOW = """
SELECT r.run_id, c.tld,
       count(*) FILTER (WHERE c.class IN ('agree', 'business_mismatch')) AS compared,
       count(*) FILTER (WHERE c.class = 'business_mismatch') AS mismatched
FROM reconciliation_runs r
JOIN shadow_comparisons c ON c.created_at >= r.window_start AND c.created_at < r.window_end
WHERE r.run_id = ANY(%(ids)s) AND c.pair = 'legacy' AND c.decided_run_id <= r.run_id
GROUP BY r.run_id, c.tld
"""


async def _rows(conn: AsyncConnection[Any], sql: str, **params: Any) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


async def latest_run_id(pool: AsyncConnectionPool) -> int:
    """The latest full run (nightly or manual; a finished one first), else the latest sweep."""
    async with pool.connection() as conn:
        rows = await _rows(conn, _LATEST)
    if not rows:
        raise RunNotFound(None)
    return int(rows[0]["run_id"])


async def run_info(conn: AsyncConnection[Any], run_id: int) -> RunInfo:
    rows = await _rows(conn, _RUN, run=run_id)
    if not rows:
        raise RunNotFound(run_id)
    r = rows[0]
    return RunInfo(**{**r, "counts": dict(r["counts"] or {}), "unchecked": tuple(r["unchecked"])})


def _durations(r: dict[str, Any]) -> Durations:
    p25, p50, p75, p95, p99 = r["pct"] or [None] * 5
    return Durations(r["finished"], r["min"], p25, p50, p75, p95, p99, r["max"])


async def _engines(conn: AsyncConnection[Any], run: RunInfo) -> tuple[EngineFigures, ...]:
    found: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for r in await _rows(conn, _FINDINGS_BY_ENGINE, run=run.run_id):
        found[(r["tld"], r["engine"])][r["kind"]] = int(r["n"])
    out: dict[tuple[str, str], EngineFigures] = {}
    transient = sorted(TRANSIENT)
    for r in await _rows(conn, _VOLUMES, since=run.since, until=run.until, transient=transient):
        key = (r["tld"], r["engine"])
        out[key] = EngineFigures(
            r["tld"],
            r["engine"],
            total=int(r["total"]),
            done=int(r["done"]),
            failed=int(r["failed"]),
            cancelled=int(r["cancelled"]),
            open=int(r["open"]),
            durations=_durations(r),
            findings=found[key],
            transient=int(r["transient"]),
        )
    for (tld, engine), kinds in found.items():  # findings of an engine without operations
        out.setdefault((tld, engine), EngineFigures(tld, engine, findings=kinds))
    return tuple(out[k] for k in sorted(out))


async def _history(conn: AsyncConnection[Any], run_id: int, runs: int) -> tuple[HistoryPoint, ...]:
    points = list(reversed(await _rows(conn, _HISTORY_RUNS, run=run_id, runs=runs)))
    ids = [p["run_id"] for p in points]
    findings: dict[int, dict[str, int]] = defaultdict(dict)
    for r in await _rows(conn, _HISTORY_FINDINGS, ids=ids):
        findings[r["run_id"]][r["severity"]] = int(r["n"])
    shadow: dict[int, dict[str, ShadowFigures]] = defaultdict(dict)
    for r in await _rows(conn, _HISTORY_SHADOW, ids=ids):
        shadow[r["run_id"]][r["tld"]] = ShadowFigures(r["tld"], r["compared"], r["mismatched"])
    return tuple(
        HistoryPoint(**p, findings=findings[p["run_id"]], shadow=shadow[p["run_id"]])
        for p in points
    )


_ROLLOUTS = """
SELECT at, tld, action, actor, from_mode, from_rollout, to_mode, to_rollout, verdict, run_id,
       forced, reason, findings
FROM rollout_events WHERE at <= coalesce(%(until)s, now())
ORDER BY event_id DESC LIMIT %(limit)s
"""
MAX_ROLLOUTS = 100


async def collect(
    pool: AsyncConnectionPool, run_id: int, *, runs: int = 7, tlds: Iterable[str] = ()
) -> Figures:
    """Every figure of run `run_id`'s report; `runs`: how many full runs the trend covers and
    each TLD's readiness is judged on (`tlds`: those it is judged for)."""
    async with pool.connection() as conn:  # one snapshot: the figures agree with each other
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        run = await run_info(conn, run_id)
        engines = await _engines(conn, run)
        shadow = tuple(
            ShadowFigures(
                r["tld"],
                r["agreed"] + r["mismatched"],
                r["mismatched"],
                r["pending"],
                r["not_comparable"],
                r["aa_compared"],
                r["aa_mismatched"],
                r["plan_failed"],
            )
            for r in await _rows(conn, _SHADOW, run=run_id, since=run.since, until=run.until)
        )
        kinds = await _rows(conn, _KINDS, run=run_id)
        rows = await _rows(conn, _FINDINGS, run=run_id, limit=MAX_FINDINGS)
        history = await _history(conn, run_id, runs)
        trail = await trails(conn, run_id, runs, tlds)
        rollouts = tuple(
            RolloutRow(**{**r, "findings": tuple(r["findings"] or ())})
            for r in await _rows(conn, _ROLLOUTS, until=run.finished_at, limit=MAX_ROLLOUTS)
        )
    findings = tuple(
        FindingRow(**{**r, "operation_ids": tuple(r["operation_ids"] or ())}) for r in rows
    )
    by_kind = {r["kind"]: int(r["n"]) for r in kinds}
    severities: dict[str, int] = defaultdict(int)
    for r in kinds:
        severities[r["severity"]] += int(r["n"])
    return Figures(
        run, engines, shadow, findings, by_kind, dict(severities), history, trail, rollouts
    )
