"""The checks: one set-based SQL statement per finding kind over the run's window.

Each reads the window's operations straight from the operations table (by `created_at`), the
registry renewals (the ledger source's relation), Temporal's states (`recon_wf_states`) and
the database's own tables, finds the keys that are wrong with grouping and joins only, and
fetches detail for those few keys alone. Field-level detail (deepdiff) is computed only for
pairs that differ. Checks are independent: the run executes them in parallel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from reconciler.model import Finding, Kind
from reconciler.sources import LedgerRelation
from renewals.domains import tld_of


@dataclass(frozen=True)
class CheckContext:
    since: dt.datetime
    until: dt.datetime
    stuck_after: dt.timedelta
    temporal_listed: bool  # recon_wf_states holds Temporal's view (else no status_drift)
    run_id: int = 0
    ledger: LedgerRelation | None = None  # where the registry renewals are (renewal checks)
    lookback: dt.timedelta = dt.timedelta(days=31)
    # A sweep looks at the operations that finished in its window (lost renewals, missing
    # refunds), whenever they were created: a renewal done after the tick it was created in is
    # still caught by the next sweep. A full run looks at those created in its window.
    by_finish: bool = False
    ledger_since: dt.datetime | None = None  # registry renewals from here (default: since)

    @property
    def moment(self) -> str:
        """The operations column that places an operation in the window."""
        return "finished_at" if self.by_finish else "created_at"

    def params(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "lookback": self.since - self.lookback,
            "ledger_since": self.ledger_since or self.since,
            "run_id": self.run_id,
            "stuck_before": dt.datetime.now(dt.UTC) - self.stuck_after,
        }


async def _rows(
    conn: AsyncConnection[Any],
    query: str | sql.SQL | sql.Composed,
    ctx: CheckContext,
    **extra: Any,
) -> list[dict[str, Any]]:
    """Run a check's statement; a `sql.SQL` one reads the registry ledger as `{ledger}` and
    places operations in the window by `{moment}` (a `sql.Composed` one is run as composed)."""
    statement: str | sql.Composed
    if isinstance(query, sql.SQL):
        if ctx.ledger is None:
            raise ValueError("ledger: this check reads the registry ledger, none was given")
        statement = query.format(ledger=ctx.ledger.relation(), moment=sql.Identifier(ctx.moment))
    else:
        statement = query
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(statement, {**ctx.params(), **extra})
    return await cur.fetchall()


async def _details(
    conn: AsyncConnection[Any], query: str, ctx: CheckContext, keys: list[str]
) -> list[dict[str, Any]]:
    return await _rows(conn, query, ctx, keys=keys) if keys else []


def _tld(domain: str | None) -> str | None:
    return tld_of(domain) if domain else None


_RENEWALS = sql.SQL("""
SELECT coalesce(o.domain, r.domain) AS domain,
       coalesce(o.current_expiry, r.cur_exp_date) AS period,
       o.engine, r.created_at AS renewed_at
FROM (SELECT domain, current_expiry, engine FROM operations
      WHERE status = 'done' AND {moment} >= %(since)s AND {moment} < %(until)s) o
FULL OUTER JOIN {ledger} r ON r.domain = o.domain AND r.cur_exp_date = o.current_expiry
WHERE (o.domain IS NULL AND r.created_at >= %(since)s) OR r.domain IS NULL
""")
_DOUBLE_RENEWALS = sql.SQL("""
SELECT domain, cur_exp_date AS period, count(*) AS n
FROM {ledger} r GROUP BY domain, cur_exp_date HAVING count(*) > 1
""")
_RENEWAL_DETAIL = sql.SQL("""
SELECT domain, cur_exp_date, array_agg(server_tx_id ORDER BY created_at) AS txs,
       array_agg(new_expiry ORDER BY created_at) AS expiries
FROM {ledger} r WHERE domain = ANY(%(domains)s)
GROUP BY domain, cur_exp_date
""")
_OPS_OF_KEYS = """
SELECT idempotency_key, array_agg(operation_id ORDER BY operation_id) AS ops,
       bool_or(status = 'done') AS any_done,
       string_agg(DISTINCT engine, ',') AS engines
FROM operations WHERE idempotency_key = ANY(%(keys)s) GROUP BY idempotency_key
"""


async def renewal_pairs(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    """lost and unrecorded renewals from one full outer join; double renewals by grouping."""
    unmatched = [  # a renewal after the window belongs to an operation of a later window
        r
        for r in await _rows(conn, _RENEWALS, ctx)
        if not (r["engine"] is None and r["renewed_at"] >= ctx.until)
    ]
    doubles = await _rows(conn, _DOUBLE_RENEWALS, ctx)
    rows = unmatched + doubles
    if not rows:
        return []
    keys = sorted({f"renew:{r['domain']}:{r['period'].isoformat()}" for r in rows})
    ops = {r["idempotency_key"]: r for r in await _rows(conn, _OPS_OF_KEYS, ctx, keys=keys)}
    detail = {
        (r["domain"], r["cur_exp_date"]): r
        for r in await _rows(
            conn, _RENEWAL_DETAIL, ctx, domains=sorted({r["domain"] for r in rows})
        )
    }
    found: dict[str, Finding] = {}
    for r in rows:
        key = f"renew:{r['domain']}:{r['period'].isoformat()}"
        mine = ops.get(key)
        common: dict[str, Any] = {
            "tld": _tld(r["domain"]),
            "idempotency_key": key,
            "domain": r["domain"],
            "operation_ids": tuple(mine["ops"]) if mine else (),
        }
        d = detail.get((r["domain"], r["period"]))
        if "n" in r:
            found[f"double_renewal:{key}"] = Finding(
                Kind.DOUBLE_RENEWAL,
                f"double_renewal:{r['domain']}:{r['period']}",
                f"{r['domain']} renewed {r['n']} times for the period from {r['period']}",
                engine=mine["engines"] if mine else None,
                evidence={
                    "server_tx_ids": d["txs"] if d else [],
                    "new_expiries": [str(e) for e in d["expiries"]] if d else [],
                },
                **common,
            )
        elif r["engine"] is not None:
            found[f"lost_renewal:{key}"] = Finding(
                Kind.LOST_RENEWAL,
                f"lost_renewal:{key}",
                f"{r['domain']}: operation done, no renewal at the registry",
                engine=r["engine"],
                **common,
            )
        elif not (mine and mine["any_done"]):  # no operation done for it, in any window
            found[f"unrecorded_renewal:{key}"] = Finding(
                Kind.UNRECORDED_RENEWAL,
                f"unrecorded_renewal:{key}",
                f"{r['domain']} renewed at the registry, no operation done for it",
                evidence={"server_tx_ids": d["txs"] if d else []},
                **common,
            )
    return list(found.values())


_CHARGED_TWICE = """  -- unrefunded charges per renewal: a refund refunds one charge
SELECT idempotency_key FROM billing_ledger
WHERE created_at >= %(lookback)s AND created_at < %(until)s
GROUP BY idempotency_key
HAVING count(*) FILTER (WHERE kind = 'charge') - count(*) FILTER (WHERE kind = 'refund') > 1
   AND max(created_at) >= %(since)s
"""
_DOUBLE_CHARGES = """
SELECT b.idempotency_key, count(*) AS n, sum(b.amount_cents) AS total,
       array_agg(DISTINCT b.operation_id) AS ops, array_agg(b.charge_key) AS charge_keys,
       (SELECT string_agg(DISTINCT o.engine, ',') FROM operations o
        WHERE o.idempotency_key = b.idempotency_key) AS engines
FROM billing_ledger b
WHERE b.idempotency_key = ANY(%(keys)s) AND b.kind = 'charge'
  AND NOT EXISTS (SELECT 1 FROM billing_ledger r
                  WHERE r.kind = 'refund' AND r.charge_key = b.charge_key)
GROUP BY b.idempotency_key
"""


async def keys_of(conn: AsyncConnection[Any], query: str, ctx: CheckContext) -> list[str]:
    """The few keys a check's set-based scan finds (an index-only aggregate): the detail is
    then read for those keys alone, by the key index (a join back on a scan's estimate would
    hash the whole table)."""
    cur = await conn.execute(query, ctx.params())
    return [str(row[0]) for row in await cur.fetchall()]


async def double_charges(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    keys = await keys_of(conn, _CHARGED_TWICE, ctx)
    return [
        Finding(
            Kind.DOUBLE_CHARGE,
            f"double_charge:{r['idempotency_key']}",
            f"charged {r['n']} times ({r['total']} cents) for {r['idempotency_key']}",
            tld=_tld(r["idempotency_key"].split(":")[1]),
            engine=r["engines"],
            idempotency_key=r["idempotency_key"],
            domain=r["idempotency_key"].split(":")[1],
            operation_ids=tuple(sorted(r["ops"])),
            evidence={"charge_keys": r["charge_keys"], "total_cents": r["total"]},
        )
        for r in await _details(conn, _DOUBLE_CHARGES, ctx, keys)
    ]
