"""The checks: one set-based SQL statement per finding kind over the run's window.

Each statement reads the window's operations (`w_ops`, a temp table made once per run), the
registry renewals (`reg_renewals`), Temporal's states (`wf_states`) and the database tables,
and returns only the rows that are findings. Field-level detail (deepdiff) is computed only
for the pairs that differ.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from reconciler.model import Finding, Kind

WINDOW_OPS = (
    "CREATE TEMP TABLE w_ops ON COMMIT DROP AS SELECT * FROM operations"
    " WHERE created_at >= %(since)s AND created_at < %(until)s",
    "CREATE INDEX ON w_ops (idempotency_key)",
    "ANALYZE w_ops",
)


@dataclass(frozen=True)
class CheckContext:
    since: dt.datetime
    until: dt.datetime
    stuck_after: dt.timedelta
    temporal_listed: bool  # wf_states holds Temporal's view (else no status_drift check)

    def params(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "stuck_before": dt.datetime.now(dt.UTC) - self.stuck_after,
        }


async def _rows(conn: AsyncConnection[Any], sql: str, ctx: CheckContext) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, ctx.params())
    return await cur.fetchall()


def _tld(domain: str | None) -> str | None:
    return domain.rsplit(".", 1)[-1] if domain else None


_DUPLICATES = """
SELECT o.idempotency_key, min(o.domain) AS domain,
       array_agg(o.operation_id ORDER BY o.created_at, o.operation_id) AS ops,
       array_agg(o.engine || '/' || o.origin || '/' || o.status
                 ORDER BY o.created_at, o.operation_id) AS states
FROM operations o
WHERE o.idempotency_key IN (SELECT idempotency_key FROM w_ops)
GROUP BY o.idempotency_key
HAVING min(o.operation_id) <> max(o.operation_id)
"""


async def duplicate_operations(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    return [
        Finding(
            Kind.DUPLICATE_OPERATION,
            f"duplicate_operation:{r['idempotency_key']}",
            f"{len(r['ops'])} operations share {r['idempotency_key']}",
            tld=_tld(r["domain"]),
            engine=",".join(sorted({s.split("/")[0] for s in r["states"]})),
            idempotency_key=r["idempotency_key"],
            domain=r["domain"],
            operation_ids=tuple(r["ops"]),
            evidence={"operations": dict(zip(r["ops"], r["states"], strict=True))},
        )
        for r in await _rows(conn, _DUPLICATES, ctx)
    ]


_RENEWALS = """
WITH done AS (
    SELECT domain, current_expiry, array_agg(operation_id ORDER BY operation_id) AS ops,
           min(engine) AS engine
    FROM w_ops WHERE status = 'done' GROUP BY domain, current_expiry),
reg AS (
    SELECT domain, cur_exp_date, count(*) AS n, min(created_at) AS first_at,
           array_agg(server_tx_id ORDER BY created_at) AS txs,
           array_agg(new_expiry ORDER BY created_at) AS expiries
    FROM reg_renewals GROUP BY domain, cur_exp_date)
SELECT coalesce(done.domain, reg.domain) AS domain,
       coalesce(done.current_expiry, reg.cur_exp_date) AS period,
       done.ops, done.engine, reg.n, reg.txs, reg.expiries, reg.first_at
FROM done FULL OUTER JOIN reg
  ON reg.domain = done.domain AND reg.cur_exp_date = done.current_expiry
WHERE reg.n IS NULL OR reg.n > 1 OR done.domain IS NULL
"""


async def renewal_pairs(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    """double_renewal, lost_renewal and unrecorded_renewal from one full outer join."""
    found = []
    for r in await _rows(conn, _RENEWALS, ctx):
        key = f"renew:{r['domain']}:{r['period'].isoformat()}"
        common = {"tld": _tld(r["domain"]), "idempotency_key": key, "domain": r["domain"]}
        ops = tuple(r["ops"] or ())
        if r["n"] is not None and r["n"] > 1:
            found.append(
                Finding(
                    Kind.DOUBLE_RENEWAL,
                    f"double_renewal:{r['domain']}:{r['period']}",
                    f"{r['domain']} renewed {r['n']} times for the period from {r['period']}",
                    engine=r["engine"],
                    operation_ids=ops,
                    evidence={
                        "server_tx_ids": r["txs"],
                        "new_expiries": [str(e) for e in r["expiries"]],
                    },
                    **common,
                )
            )
        elif r["n"] is None:
            found.append(
                Finding(
                    Kind.LOST_RENEWAL,
                    f"lost_renewal:{key}",
                    f"{r['domain']}: operation done, no renewal at the registry",
                    engine=r["engine"],
                    operation_ids=ops,
                    **common,
                )
            )
        elif r["first_at"] < ctx.until:
            found.append(  # renewed, but no operation done for the key (checked below)
                Finding(
                    Kind.UNRECORDED_RENEWAL,
                    f"unrecorded_renewal:{key}",
                    f"{r['domain']} renewed at the registry, no operation done for it",
                    evidence={"server_tx_ids": r["txs"]},
                    **common,
                )
            )
    unrecorded = [f.idempotency_key for f in found if f.kind == Kind.UNRECORDED_RENEWAL]
    if unrecorded:  # a done operation outside the window accounts for the renewal
        cur = await conn.execute(
            "SELECT DISTINCT idempotency_key FROM operations"
            " WHERE status = 'done' AND idempotency_key = ANY(%s)",
            (unrecorded,),
        )
        recorded = {row[0] for row in await cur.fetchall()}
        found = [
            f
            for f in found
            if not (f.kind == Kind.UNRECORDED_RENEWAL and f.idempotency_key in recorded)
        ]
    return found


_DOUBLE_CHARGES = """
SELECT b.idempotency_key, count(*) AS n, sum(b.amount_cents) AS total,
       array_agg(DISTINCT b.operation_id) AS ops, array_agg(b.charge_key) AS charge_keys
FROM billing_ledger b
WHERE b.kind = 'charge'
  AND b.idempotency_key IN (SELECT idempotency_key FROM w_ops)
  AND NOT EXISTS (SELECT 1 FROM billing_ledger r
                  WHERE r.kind = 'refund' AND r.charge_key = b.charge_key)
GROUP BY b.idempotency_key
HAVING count(*) > 1
"""


async def double_charges(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    return [
        Finding(
            Kind.DOUBLE_CHARGE,
            f"double_charge:{r['idempotency_key']}",
            f"charged {r['n']} times ({r['total']} cents) for {r['idempotency_key']}",
            tld=_tld(r["idempotency_key"].split(":")[1]),
            idempotency_key=r["idempotency_key"],
            domain=r["idempotency_key"].split(":")[1],
            operation_ids=tuple(sorted(r["ops"])),
            evidence={"charge_keys": r["charge_keys"], "total_cents": r["total"]},
        )
        for r in await _rows(conn, _DOUBLE_CHARGES, ctx)
    ]
