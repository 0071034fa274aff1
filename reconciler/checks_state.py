"""Checks on the state of operations: refunds, stuck work, drift from Temporal, routing."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from reconciler.checks import CheckContext, _rows, _tld
from reconciler.model import Finding, Kind
from renewals.operations import TERMINAL_SQL
from renewals.outcomes import BUSINESS_REFUSALS, EXPIRY_MISMATCH, SUPERSEDED, refusal

# An operation that ended without its renewal keeps no charge: cancelled, superseded (another
# operation has the renewal), or failed on a business outcome (a registry refusal, renewed
# elsewhere: running it again cannot renew it). A transient failure may still be relaunched:
# its charge waits. A failed expiry mismatch whose period the registry did renew, with no
# operation of the key done, may be this operation's own renewal left unrecorded (the legacy
# engine's blind retry after a timeout): unrecorded_renewal reports it, and the charge paid it.
_REFUND_MISSING = sql.SQL("""
SELECT o.operation_id, o.idempotency_key, o.domain, o.engine, o.status, o.error_code,
       sum(b.amount_cents) AS unrefunded
FROM operations o
JOIN billing_ledger b ON b.operation_id = o.operation_id AND b.kind = 'charge'
WHERE o.{moment} >= %(since)s AND o.{moment} < %(until)s
  AND o.status IN ('cancelled', 'superseded', 'failed')  -- operations_ended_unrenewed_idx
  AND (o.status IN ('cancelled', 'superseded')
       OR (o.status = 'failed' AND o.error_code = ANY(%(refusals)s)
           AND NOT (o.error_code = ANY(%(mismatch)s) AND {renewed_unrecorded})))
  AND NOT EXISTS (SELECT 1 FROM billing_ledger r
                  WHERE r.kind = 'refund' AND r.charge_key = b.charge_key)
GROUP BY o.operation_id, o.idempotency_key, o.domain, o.engine, o.status, o.error_code
""")
_RENEWED_UNRECORDED = sql.SQL("""(
    EXISTS (SELECT 1 FROM {ledger} r
            WHERE r.domain = o.domain AND r.cur_exp_date = o.current_expiry)
    AND NOT EXISTS (SELECT 1 FROM operations d
                    WHERE d.idempotency_key = o.idempotency_key AND d.status = 'done'))""")
_KEEPS_NO_CHARGE = sorted({*BUSINESS_REFUSALS, SUPERSEDED})
_MISMATCH = sorted(c for c in _KEEPS_NO_CHARGE if refusal(c) == EXPIRY_MISMATCH)  # both engines


async def refunds_missing(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    renewed = (  # without the registry ledger, every refusal that kept its charge is reported
        _RENEWED_UNRECORDED.format(ledger=ctx.ledger.relation()) if ctx.ledger else sql.SQL("false")
    )
    statement = _REFUND_MISSING.format(
        renewed_unrecorded=renewed, moment=sql.Identifier(ctx.moment)
    )
    rows = await _rows(conn, statement, ctx, refusals=_KEEPS_NO_CHARGE, mismatch=_MISMATCH)
    return [
        Finding(
            Kind.REFUND_MISSING,
            f"refund_missing:{r['operation_id']}",
            f"{r['domain']}: {r['status']}"
            + (f" ({r['error_code']})" if r["error_code"] else "")
            + f" with {r['unrefunded']} cents charged and not refunded",
            tld=_tld(r["domain"]),
            engine=r["engine"],
            idempotency_key=r["idempotency_key"],
            domain=r["domain"],
            operation_ids=(r["operation_id"],),
            evidence={
                "unrefunded_cents": r["unrefunded"],
                "status": r["status"],
                "error_code": r["error_code"],
            },
        )
        for r in rows
    ]


_STUCK = f"""
SELECT operation_id, idempotency_key, domain, engine, status, step, attempts, created_at,
       updated_at
FROM operations
WHERE status NOT IN {TERMINAL_SQL} AND created_at < %(stuck_before)s
  AND created_at >= %(since)s AND created_at < %(until)s
"""


async def stuck_operations(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    return [
        Finding(
            Kind.STUCK_OPERATION,
            f"stuck_operation:{r['operation_id']}",
            f"{r['domain']}: still {r['status']} (step {r['step']})"
            f" since {r['created_at']:%Y-%m-%d %H:%M}",
            tld=_tld(r["domain"]),
            engine=r["engine"],
            idempotency_key=r["idempotency_key"],
            domain=r["domain"],
            operation_ids=(r["operation_id"],),
            evidence={
                "status": r["status"],
                "step": r["step"],
                "attempts": r["attempts"],
                "last_update": r["updated_at"].isoformat(),
            },
        )
        for r in await _rows(conn, _STUCK, ctx)
    ]


_ROUTING = """
WITH wrong AS (  -- an operation of the window run by an engine it was not routed to
    SELECT DISTINCT o.idempotency_key FROM operations o
    JOIN routing_decisions d ON d.idempotency_key = o.idempotency_key
    WHERE o.created_at >= %(since)s AND o.created_at < %(until)s AND o.engine <> d.engine
      AND o.status <> 'superseded')  -- a superseded operation ran nothing
SELECT d.idempotency_key, d.domain, d.engine AS routed, d.mode,
       array_agg(o.operation_id ORDER BY o.operation_id) AS ops,
       array_agg(DISTINCT o.engine) AS engines
FROM wrong JOIN routing_decisions d USING (idempotency_key)
JOIN operations o ON o.idempotency_key = d.idempotency_key AND o.status <> 'superseded'
GROUP BY d.idempotency_key, d.domain, d.engine, d.mode
"""


async def routing_violations(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    return [
        Finding(
            Kind.ROUTING_VIOLATION,
            f"routing_violation:{r['idempotency_key']}",
            f"{r['domain']}: routed to {r['routed']}, run by {' and '.join(sorted(r['engines']))}",
            tld=_tld(r["domain"]),
            engine=",".join(sorted(r["engines"])),
            idempotency_key=r["idempotency_key"],
            domain=r["domain"],
            operation_ids=tuple(r["ops"]),
            evidence={"routed": r["routed"], "mode": r["mode"], "engines": sorted(r["engines"])},
        )
        for r in await _rows(conn, _ROUTING, ctx)
    ]


# Which Temporal states agree with which database statuses.
_DRIFT = """
SELECT o.operation_id, o.idempotency_key, o.domain, o.status AS db_status,
       coalesce(s.status, 'MISSING') AS wf_status, s.wf_run_id AS run_id
FROM operations o
LEFT JOIN recon_wf_states s ON s.run_id = %(run_id)s AND s.workflow_id = o.workflow_id
WHERE o.engine = 'temporal' AND o.created_at >= %(since)s AND o.created_at < %(until)s
  AND NOT (
      (s.status IS NULL AND o.status IN ('todo', 'superseded'))
   OR (s.status = 'RUNNING' AND o.status IN ('todo', 'doing'))
   OR (s.status = 'COMPLETED' AND o.status IN ('done', 'cancelled', 'superseded'))
   OR (s.status IN ('FAILED', 'TIMED_OUT', 'TERMINATED') AND o.status = 'failed')
   OR (s.status = 'CANCELED' AND o.status = 'cancelled'))
"""


async def status_drift(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    if not ctx.temporal_listed:
        return []
    return [
        Finding(
            Kind.STATUS_DRIFT,
            f"status_drift:{r['operation_id']}",
            f"{r['domain']}: database says {r['db_status']}, Temporal says {r['wf_status']}",
            tld=_tld(r["domain"]),
            engine="temporal",
            idempotency_key=r["idempotency_key"],
            domain=r["domain"],
            operation_ids=(r["operation_id"],),
            evidence={
                "database": r["db_status"],
                "temporal": r["wf_status"],
                "run_id": r["run_id"],
            },
        )
        for r in await _rows(conn, _DRIFT, ctx)
    ]
