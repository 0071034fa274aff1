"""Keys with more than one operation: duplicate operations, and among them the keys both
engines ran side effects for.

One pass over the operations of the window finds every key with two or more operations (an
index-only scan of the key index, which covers created_at), plus the keys of older operations
one of which finished in the window (the touch that came late: a sweep sees it in its tick);
both kinds are then judged on those few keys alone. A key both engines touched has two
operations at least, so the cross-engine check needs no pass of its own.
"""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from typing import Any

from psycopg import AsyncConnection

from reconciler.checks import CheckContext, _details, _tld, keys_of
from reconciler.model import Finding, Kind

_TWICE = """
SELECT idempotency_key FROM operations
WHERE created_at >= %(lookback)s AND created_at < %(until)s
GROUP BY idempotency_key
HAVING count(*) > 1 AND max(created_at) >= %(since)s
UNION  -- and a key of older operations one of which finished in the window (a late touch)
SELECT o.idempotency_key FROM operations o
WHERE o.finished_at >= %(since)s AND o.finished_at < %(until)s AND o.created_at < %(since)s
  AND o.created_at >= %(lookback)s
  AND EXISTS (SELECT 1 FROM operations x
              WHERE x.idempotency_key = o.idempotency_key AND x.operation_id <> o.operation_id)
"""
_KEYED = """
SELECT o.idempotency_key, o.domain, o.operation_id, o.engine, o.origin, o.status, o.created_at,
       greatest(o.created_at, o.finished_at) AS last_at,
       o.years, o.customer_id,
       -- ran a side effect (a charge, the registry step, or done), outside a superseded one
       (o.created_at >= %(lookback)s AND o.created_at < %(until)s
        AND o.status <> 'superseded'
        AND (o.status = 'done' OR o.step IN ('charge', 'renew', 'record')
             OR EXISTS (SELECT 1 FROM billing_ledger b
                        WHERE b.operation_id = o.operation_id AND b.kind = 'charge')))
           AS touched
FROM operations o WHERE o.idempotency_key = ANY(%(keys)s)
ORDER BY o.idempotency_key, o.created_at, o.operation_id
"""


def _duplicate(key: str, ops: list[dict[str, Any]]) -> Finding:
    """Operations sharing a key. Where their parameters differ, a second creator asked for
    another renewal under the same key (a conflict the router refuses; the batch or an import
    wrote it anyway, and the database superseded it): the finding names the fields."""
    ids = tuple(r["operation_id"] for r in ops)
    states = [f"{r['engine']}/{r['origin']}/{r['status']}" for r in ops]
    domain = min(r["domain"] for r in ops)
    conflict = [f for f in ("years", "customer_id") if len({r[f] for r in ops}) > 1]
    evidence: dict[str, Any] = {"operations": dict(zip(ids, states, strict=True))}
    if conflict:
        evidence["conflicting_parameters"] = conflict
    return Finding(
        Kind.DUPLICATE_OPERATION,
        f"duplicate_operation:{key}",
        f"{len(ids)} operations share {key}"
        + (f" with different {' and '.join(conflict)} (a conflict)" if conflict else ""),
        tld=_tld(domain),
        engine=",".join(sorted({r["engine"] for r in ops})),
        idempotency_key=key,
        domain=domain,
        operation_ids=ids,
        evidence=evidence,
    )


def _cross_engine(key: str, ops: list[dict[str, Any]], since: dt.datetime) -> Finding | None:
    """Both engines ran side effects for one key: the guards were bypassed (data written
    directly, a legacy system that does not look). Critical: a renewal belongs to one engine."""
    touched = [r for r in ops if r["touched"]]
    if len({r["engine"] for r in touched}) < 2 or max(r["last_at"] for r in touched) < since:
        return None
    domain = key.split(":")[1]
    ids = tuple(r["operation_id"] for r in touched)
    return Finding(
        Kind.CROSS_ENGINE_DUPLICATE,
        f"cross_engine_duplicate:{key}",
        f"{domain}: both engines ran side effects for {key}",
        tld=_tld(domain),
        engine="legacy,temporal",
        idempotency_key=key,
        domain=domain,
        operation_ids=ids,
        evidence={
            "operations": {r["operation_id"]: f"{r['engine']}/{r['status']}" for r in touched}
        },
    )


async def duplicate_keys(conn: AsyncConnection[Any], ctx: CheckContext) -> list[Finding]:
    found: list[Finding] = []
    rows = await _details(conn, _KEYED, ctx, await keys_of(conn, _TWICE, ctx))
    for key, group in groupby(rows, key=lambda r: str(r["idempotency_key"])):
        ops = list(group)
        found.append(_duplicate(key, ops))
        cross = _cross_engine(key, ops, ctx.since)
        if cross is not None:
            found.append(cross)
    return found
