"""Shadow comparisons (DESIGN §5): each Temporal plan against what legacy did, and for the A/A
sample a second plan against the first. Each falls into one class:

- agree: the same business decision;
- business_mismatch: renew vs refuse, another price or charge, years, new expiry or refusal
  reason (a `shadow_mismatch` finding, with the deepdiff as evidence);
- not_comparable: legacy, or the plan, ended on a transient failure (rate limited,
  unavailable, timeout, attempts exhausted), or legacy was cancelled. That includes legacy's
  blind retry of a renew that timed out: the registry committed the first renew, the replay
  is refused with an expiry mismatch, and legacy fails on that refusal of its own making (an
  infrastructure failure, met apart as an `unrecorded_renewal`), not a business decision;
- pending: not both decided yet.

Classes are stored per key and pair (`shadow_comparisons`), with the run that first decided
them, so a report of any run counts what was known at that run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from psycopg import AsyncConnection

from reconciler.checks import CheckContext, _rows, _tld
from reconciler.evidence import diff, legacy_decision, plan_decision
from reconciler.model import Finding, Kind
from renewals.outcomes import is_transient

Class = Literal["agree", "business_mismatch", "not_comparable", "pending"]
FINAL = ("agree", "business_mismatch", "not_comparable")
_FAILED_RUNS = ("FAILED", "TIMED_OUT", "TERMINATED", "CANCELED")

# Every legacy operation routed in shadow mode (or planned, or with a plan's workflow in
# Temporal), with its plan ('a') and the plan's workflow. `renew_timed_out`: legacy failed on
# an expiry mismatch after one of its own renews timed out at the registry step (its `error`
# event, code registry_timeout): the registry committed that renew, legacy retried it blindly
# and its replay was refused.
_LEGACY_PAIRS = """
SELECT o.idempotency_key, o.tld, o.domain, o.created_at, o.operation_id, o.status,
       o.error_code, o.years, o.new_expiry, o.charged_cents, o.currency,
       p.verdict, p.refusal, p.years AS plan_years, p.expected_new_expiry,
       p.would_charge_cents, p.currency AS plan_currency, s.status AS plan_run,
       o.status = 'failed' AND o.error_code = 'expiry_mismatch' AND EXISTS (
           SELECT 1 FROM operation_events e
           WHERE e.operation_id = o.operation_id AND e.event = 'error' AND e.step = 'renew'
             AND e.detail->>'code' = 'registry_timeout') AS renew_timed_out
FROM (  -- the window's shadowed keys, from the small side: decisions, plans, plan runs
    SELECT idempotency_key FROM routing_decisions
    WHERE mode = 'shadow' AND decided_at >= %(since)s AND decided_at < %(until)s
    UNION
    SELECT idempotency_key FROM shadow_plans WHERE plan = 'a' AND planned_at >= %(since)s
    UNION
    SELECT substr(workflow_id, 8) FROM recon_wf_states
    WHERE run_id = %(run_id)s AND workflow_id LIKE 'shadow:%%'
      AND workflow_id NOT LIKE 'shadow:b:%%') AS k
JOIN operations o ON o.idempotency_key = k.idempotency_key
LEFT JOIN routing_decisions d ON d.operation_id = o.operation_id AND d.mode = 'shadow'
LEFT JOIN shadow_plans p ON p.idempotency_key = o.idempotency_key AND p.plan = 'a'
LEFT JOIN recon_wf_states s ON s.run_id = %(run_id)s
                           AND s.workflow_id = 'shadow:' || o.idempotency_key
WHERE o.engine = 'legacy' AND o.status <> 'superseded'
  AND o.created_at >= %(since)s AND o.created_at < %(until)s
  AND (d.operation_id IS NOT NULL OR p.idempotency_key IS NOT NULL OR s.workflow_id IS NOT NULL)
"""
# The A/A sample: the second plan against the first.
_AA_PAIRS = """
SELECT o.idempotency_key, o.tld, o.created_at,
       a.verdict, a.refusal, a.years, a.expected_new_expiry, a.would_charge_cents, a.currency,
       b.verdict AS b_verdict, b.refusal AS b_refusal, b.years AS b_years,
       b.expected_new_expiry AS b_expected_new_expiry,
       b.would_charge_cents AS b_would_charge_cents, b.currency AS b_currency,
       s.status AS b_run
FROM operations o
JOIN shadow_plans a ON a.idempotency_key = o.idempotency_key AND a.plan = 'a'
LEFT JOIN shadow_plans b ON b.idempotency_key = o.idempotency_key AND b.plan = 'b'
LEFT JOIN recon_wf_states s ON s.run_id = %(run_id)s
                           AND s.workflow_id = 'shadow:b:' || o.idempotency_key
WHERE o.engine = 'legacy' AND o.created_at >= %(since)s AND o.created_at < %(until)s
  AND (b.idempotency_key IS NOT NULL OR s.workflow_id IS NOT NULL)
"""
_STORE = """
INSERT INTO shadow_comparisons (idempotency_key, pair, tld, created_at, class, reason,
                                decided_run_id, updated_run_id)
VALUES (%(key)s, %(pair)s, %(tld)s, %(created_at)s, %(class)s, %(reason)s,
        CASE WHEN %(class)s <> 'pending' THEN %(run_id)s::bigint END, %(run_id)s)
ON CONFLICT (idempotency_key, pair) DO UPDATE SET
    class = excluded.class, reason = excluded.reason, updated_run_id = excluded.updated_run_id,
    decided_run_id = CASE WHEN excluded.class = 'pending' THEN NULL
                          WHEN shadow_comparisons.class = excluded.class
                          THEN coalesce(shadow_comparisons.decided_run_id,
                                        excluded.decided_run_id)
                          ELSE excluded.decided_run_id END
"""


def classify_legacy(row: Mapping[str, Any]) -> tuple[Class, str | None, dict[str, Any]]:
    """The class of a plan against legacy, why (when not comparable), and the diff."""
    if row["status"] == "cancelled":
        return "not_comparable", "legacy cancelled", {}
    if row["status"] == "failed" and is_transient(row["error_code"]):
        return "not_comparable", f"legacy failed: {row['error_code']}", {}
    if row.get("renew_timed_out"):  # its own timed-out renew, replayed: not a refusal
        return "not_comparable", "legacy failed: expiry_mismatch replaying its timed-out renew", {}
    if row["verdict"] is None:
        if row["plan_run"] in _FAILED_RUNS:
            return "not_comparable", f"plan {row['plan_run'].lower()}", {}
        return "pending", "no plan yet", {}
    if row["status"] not in ("done", "failed"):
        return "pending", f"legacy {row['status']}", {}
    plan = plan_decision({**row, "years": row["plan_years"], "currency": row["plan_currency"]})
    found = diff(plan, legacy_decision(row))
    return ("business_mismatch" if found else "agree"), None, found


def classify_aa(row: Mapping[str, Any]) -> tuple[Class, str | None, dict[str, Any]]:
    """The class of the second plan against the first (noise when they differ)."""
    if row["b_verdict"] is None:
        if row["b_run"] in _FAILED_RUNS:
            return "not_comparable", f"second plan {row['b_run'].lower()}", {}
        return "pending", "no second plan yet", {}
    second = {k[2:]: v for k, v in row.items() if k.startswith("b_")}
    found = diff(plan_decision(row), plan_decision(second))
    return ("business_mismatch" if found else "agree"), None, found


async def shadow_comparisons(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    """Classify every shadow comparison of the window, store the classes, and report the
    business mismatches of plans against legacy as findings."""
    stored: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for row in await _rows(conn, _LEGACY_PAIRS, ctx):
        cls, reason, found = classify_legacy(row)
        stored.append(_stored(row, "legacy", cls, reason, ctx.run_id))
        if cls == "business_mismatch":
            findings.append(_mismatch(row, found))
    for row in await _rows(conn, _AA_PAIRS, ctx):
        cls, reason, _ = classify_aa(row)
        stored.append(_stored(row, "aa", cls, reason, ctx.run_id))
    if stored and ctx.run_id:
        async with conn.transaction():
            await conn.cursor().executemany(_STORE, stored)
    return findings


def _stored(
    row: Mapping[str, Any], pair: str, cls: Class, reason: str | None, run_id: int
) -> dict[str, Any]:
    return {
        "key": row["idempotency_key"],
        "pair": pair,
        "tld": row["tld"],
        "created_at": row["created_at"],
        "class": cls,
        "reason": reason,
        "run_id": run_id,
    }


def _mismatch(row: Mapping[str, Any], found: dict[str, Any]) -> Finding:
    return Finding(
        Kind.SHADOW_MISMATCH,
        f"shadow_mismatch:{row['idempotency_key']}",
        f"{row['domain']}: the Temporal plan ({row['verdict']}) and legacy ({row['status']})"
        " made different business decisions",
        tld=_tld(row["domain"]),
        engine="legacy",
        idempotency_key=row["idempotency_key"],
        domain=row["domain"],
        operation_ids=(row["operation_id"],),
        evidence={"diff": found},
    )
