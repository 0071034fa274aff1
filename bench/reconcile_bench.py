"""Reconcile a window of N operations (1M by default; 10M with `--operations 10000000`) with
known injected faults, against baselines measured in the same run on the same tables:

- bare SQL: the full outer join classifying operation/renewal pairs plus the duplicate-key
  scan (the least any reconciliation must do) — target ratio ≤ 1.5;
- reladiff's joindiff of the same pairs (1M only: it is slow beyond) — target: faster.

The tables are vacuumed and analysed after they are written (as autovacuum would do), before
anything is timed. Memory: the peak RSS of the process that runs the reconcile (it streams
nothing but findings into Python), next to its RSS before it started.

Run: `.venv/bin/pip install -e '.[bench]' && .venv/bin/python -m bench.reconcile_bench`
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import scratch_schema, server_dsn, write_section
from ops.registry_sim.ledger import SimulatorTableLedger
from reconciler.alerts import Webhook
from reconciler.model import Window
from reconciler.run import Reconciler
from renewals import logs
from renewals.db.pool import async_pool

INJECTED = 100  # of each kind

GENERATE = """
INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status, new_expiry, charged_cents,
                        currency, created_at, finished_at)
SELECT 'op-' || i, 'renew:d' || i || '.' || t.tld || ':' || e.expiry, 'd' || i || '.' || t.tld,
       t.tld, 1, e.expiry, 'c' || (i %% 5000),
       CASE WHEN i %% 2 = 0 THEN 'legacy' ELSE 'temporal' END, 'router', 'done',
       e.expiry + interval '1 year', 1000, 'EUR', %(at)s, %(at)s
FROM generate_series(1, %(n)s) AS i,
     LATERAL (SELECT (ARRAY['com','de','eu','fr','info'])[1 + i %% 5] AS tld) AS t,
     LATERAL (SELECT date '2027-01-01' + (i %% 365) AS expiry) AS e;

INSERT INTO sim_renewals (tld, domain, client_tx_id, server_tx_id, years, previous_expiry,
                          new_expiry, cur_exp_date, created_at)
SELECT tld, domain, idempotency_key, 'tx-' || operation_id, 1, current_expiry, new_expiry,
       current_expiry, %(at)s
FROM operations
WHERE operation_id NOT IN (SELECT 'op-' || i FROM generate_series(1, %(k)s) AS i);  -- lost

INSERT INTO sim_renewals (tld, domain, client_tx_id, server_tx_id, years, previous_expiry,
                          new_expiry, cur_exp_date, created_at)
SELECT tld, domain, NULL, 'tx2-' || operation_id, 1, new_expiry, new_expiry + 365,
       current_expiry, %(at)s
FROM operations WHERE operation_id IN (SELECT 'op-' || i FROM generate_series(%(k)s + 1, 2 * %(k)s) AS i);  -- double renewals

INSERT INTO sim_renewals (tld, domain, client_tx_id, server_tx_id, years, previous_expiry,
                          new_expiry, cur_exp_date, created_at)
SELECT 'fr', 'ghost' || i || '.fr', NULL, 'tx-ghost' || i, 1, date '2027-05-01',
       date '2028-05-01', date '2027-05-01', %(at)s
FROM generate_series(1, %(k)s) AS i;  -- unrecorded renewals

INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status, error_code, created_at, finished_at)
SELECT 'op-dup-' || i, o.idempotency_key, o.domain, o.tld, 1, o.current_expiry, o.customer_id,
       'legacy', 'autorenew', 'failed', 'expiry_mismatch', %(at)s, %(at)s
FROM generate_series(2 * %(k)s + 1, 3 * %(k)s) AS i JOIN operations o ON o.operation_id = 'op-' || i;

INSERT INTO billing_ledger (charge_key, kind, idempotency_key, operation_id, customer_id,
                            amount_cents, currency, created_at)
SELECT idempotency_key, 'charge', idempotency_key, operation_id, customer_id, 1000, 'EUR', %(at)s
FROM operations WHERE status = 'done';

INSERT INTO billing_ledger (charge_key, kind, idempotency_key, operation_id, customer_id,
                            amount_cents, currency, created_at)
SELECT 'legacy:' || operation_id, 'charge', idempotency_key, operation_id, customer_id, 1000,
       'EUR', %(at)s
FROM operations WHERE operation_id IN (SELECT 'op-' || i FROM generate_series(3 * %(k)s + 1, 4 * %(k)s) AS i);
"""
EXPECTED = {
    "lost_renewal": INJECTED,
    "double_renewal": INJECTED,
    "unrecorded_renewal": INJECTED,
    "duplicate_operation": INJECTED,
    "double_charge": INJECTED,
}

BARE_JOIN = """
SELECT count(*) FILTER (WHERE r.domain IS NULL) AS lost,
       count(*) FILTER (WHERE o.domain IS NULL) AS unrecorded,
       count(*) FILTER (WHERE o.domain IS NOT NULL AND r.domain IS NOT NULL
                        AND o.new_expiry IS DISTINCT FROM r.new_expiry) AS differing
FROM (SELECT domain, current_expiry, new_expiry FROM operations WHERE status = 'done') o
FULL OUTER JOIN sim_renewals r ON r.domain = o.domain AND r.cur_exp_date = o.current_expiry
"""
BARE_DUPLICATES = """
SELECT count(*) FROM (SELECT idempotency_key FROM operations GROUP BY idempotency_key
                      HAVING min(operation_id) <> max(operation_id)) d
"""


def generate(dsn: str, n: int, at: dt.datetime) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in re.split(r";[^\n]*\n", GENERATE):
            if statement.strip():
                conn.execute(statement, {"n": n, "k": INJECTED, "at": at})
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


def bare_sql(dsn: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        lost, unrecorded, differing = conn.execute(BARE_JOIN).fetchone() or (0, 0, 0)
        (dups,) = conn.execute(BARE_DUPLICATES).fetchone() or (0,)
    return time.perf_counter() - t0, {
        "lost": lost,
        "unrecorded": unrecorded,
        "differing": differing,
        "duplicates": dups,
    }


def reladiff_join(dsn: str, schema: str) -> tuple[float, int]:
    import reladiff

    # reladiff keys must be numeric: the same pairs, keyed by the generated domain number
    # (prepared outside the timing)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE v_ops AS SELECT substring(domain from 2 for"
            " position('.' in domain) - 2)::bigint AS k, new_expiry"
            " FROM operations WHERE status = 'done' AND domain LIKE 'd%%'"
        )
        conn.execute(
            "CREATE TABLE v_reg AS SELECT substring(domain from 2 for"
            " position('.' in domain) - 2)::bigint AS k, min(new_expiry) AS new_expiry"
            " FROM sim_renewals WHERE domain LIKE 'd%%' GROUP BY 1"
        )
        conn.execute("ALTER TABLE v_ops ADD PRIMARY KEY (k)")
        conn.execute("ALTER TABLE v_reg ADD PRIMARY KEY (k)")
    base = server_dsn()  # a URI: reladiff takes no conninfo string
    t0 = time.perf_counter()
    a = reladiff.connect_to_table(base, (schema, "v_ops"), "k", extra_columns=("new_expiry",))
    b = reladiff.connect_to_table(base, (schema, "v_reg"), "k", extra_columns=("new_expiry",))
    try:
        diffs = sum(1 for _ in reladiff.diff_tables(a, b, algorithm="joindiff"))
    finally:
        a.database.close()  # an open transaction would block dropping the schema
        b.database.close()
    return time.perf_counter() - t0, diffs


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB (from /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def reconcile(dsn: str, window: Window) -> tuple[float, dict[str, int], float, float]:
    """Seconds, findings, and the RSS before and the peak RSS after (MB)."""
    pool = await async_pool(dsn, max_size=4)
    try:
        rec = Reconciler(pool, SimulatorTableLedger(), Webhook(None), temporal=None)
        before, _ = rss_mb()
        t0 = time.perf_counter()
        summary = await rec.run(window)
        elapsed = time.perf_counter() - t0
        _, peak = rss_mb()
        return elapsed, summary.findings, before, peak
    finally:
        await pool.close()


def main(n: int) -> None:
    logs.configure("warning", "json")
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    window = Window(at - dt.timedelta(hours=1), at + dt.timedelta(hours=1))
    with scratch_schema() as dsn:
        schema = dsn.split("search_path=")[1].split()[0].strip("'")
        gen_s = generate(dsn, n, at)
        bare_sql(dsn)  # warm the cache for everyone
        bare_s, bare = bare_sql(dsn)
        rec_s, found, rss_before, rss_peak = asyncio.run(reconcile(dsn, window))
        bare_after_s, _ = bare_sql(dsn)
        rela = reladiff_join(dsn, schema) if n <= 1_000_000 else None
    bare_mean = (bare_s + bare_after_s) / 2
    exact = all(found.get(k) == v for k, v in EXPECTED.items()) and set(found) == set(EXPECTED)
    rela_row = (
        f"| reladiff joindiff of the same pairs ({rela[1]} differences) | {rela[0]:.2f} |"
        f" {rela[0] / bare_mean:.2f} |\n"
        if rela
        else ""
    )
    rela_line = f"Reconcile is {rela[0] / rec_s:.2f} times as fast as reladiff. " if rela else ""
    body = f"""
{n:,} operations (half legacy, half Temporal) plus {INJECTED} injected of each: lost
renewals, double renewals, unrecorded renewals, duplicate operations, double charges.
Data generated with SQL, then vacuumed and analysed, in {gen_s:.1f} s. Findings: {found} — {"all found exactly" if exact else "MISMATCH, expected " + str(EXPECTED)}.

| run | seconds | ratio to bare SQL |
|---|---|---|
| bare SQL: full outer join classifying pairs + duplicate-key scan (baseline, mean of before/after) | {bare_mean:.2f} | 1.00 |
| `dualrun` reconcile (all checks, findings recorded) | {rec_s:.2f} | **{rec_s / bare_mean:.2f}** (target ≤ 1.5) |
{rela_row}
{rela_line}Bare SQL found {bare}. The process that ran the reconcile: {rss_before:.0f} MB resident
before it, {rss_peak:.0f} MB at its peak (no operation row is read into Python: the checks
are set-based SQL, and only the findings come back).
"""
    size = f"{n / 1_000_000:g}M" if n >= 1_000_000 else f"{n:,}"
    write_section(
        f"Reconciliation of {size} operations",
        f".venv/bin/python -m bench.reconcile_bench --operations {n}",
        body,
    )
    print(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=1_000_000)
    main(parser.parse_args().operations)
