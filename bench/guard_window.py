"""The cross-engine guard's race window, measured: from a Temporal renewal's gate read to its
side effect's arrival (the charge in the billing ledger, the renew at the registry).

Before each side effect a Temporal renewal reads its gate (GATE_SQL in
renewals/operations/reads.py, in the statement that records the step's start): no cancel
flagged, no other engine's operation of its key live or done. What it read is what the side
effect acts on until the side effect lands; this measures how long that is. Every timestamp is
one PostgreSQL server's clock (now() of the step-start statement, of the billing insert, of the
simulator's renew transaction), so no clock skew enters. A renewal's whole life (operation
created → done) is measured beside it, in the same rounds, for scale.

Rounds in one run: N renewals at a steady pace (the baseline), N submitted at once (the worker
queued and the machine busy), and N at the steady pace with the provider answering in 50 ms
(the simulator's latency is spent before it records the renew: the window grows by it).

Run: `.venv/bin/python -m bench.guard_window [--renewals 200]`
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

import psycopg

from bench.common import dev_server, percentile, scratch_schema, write_section
from bench.temporal_bench import TLD, Bench
from ops.registry_sim.admin import AsyncSimAdmin
from ops.registry_sim.server import SimServer
from renewals import logs

PACE_S = 0.05  # the steady rounds: 20 renewals/s
LATENCY_MS = 50

# Per done renewal of the round: seconds from each side effect's gate read (its step's first
# start, attempt 1) to the side effect's row (billing charge; registry renewal by our clTRID),
# and the renewal's life.
_WINDOWS = """
WITH ops AS (
    SELECT operation_id, idempotency_key, created_at, finished_at FROM operations
    WHERE domain LIKE %(prefix)s AND status = 'done'),
gate AS (
    SELECT e.operation_id, e.step, min(e.at) AS at FROM operation_events e JOIN ops USING (operation_id)
    WHERE e.event = 'step.started' AND e.step IN ('charge', 'renew') AND e.attempt = 1
    GROUP BY e.operation_id, e.step)
SELECT extract(epoch FROM (SELECT min(b.created_at) FROM billing_ledger b
                           WHERE b.charge_key = o.idempotency_key AND b.kind = 'charge')
                          - c.at)::float8 AS charge_s,
       extract(epoch FROM (SELECT min(r.created_at) FROM sim_renewals r
                           WHERE r.client_tx_id = o.idempotency_key) - g.at)::float8 AS renew_s,
       extract(epoch FROM o.finished_at - o.created_at)::float8 AS life_s
FROM ops o
JOIN gate c ON c.operation_id = o.operation_id AND c.step = 'charge'
JOIN gate g ON g.operation_id = o.operation_id AND g.step = 'renew'
"""


@dataclass(frozen=True)
class Round:
    name: str
    charge: list[float]
    renew: list[float]
    life: list[float]

    def row(self) -> str:
        def ms(values: list[float]) -> str:
            p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
            return f"{p50:.1f} / {p99:.1f} / {max(values) * 1000:.1f}"

        ratio = percentile(self.renew, 99) / percentile(self.life, 50)
        return (
            f"| {self.name} | {len(self.life)} | {ms(self.charge)} | {ms(self.renew)} | "
            f"{percentile(self.life, 50) * 1000:.0f} | {ratio:.3f} |"
        )


async def measure(bench: Bench, dsn: str, name: str, n: int, pace_s: float) -> Round:
    await bench.run(n, True, pace_s=pace_s)
    prefix = f"b{bench.batch:02d}-%"  # the round's domains (Bench seeds one prefix per run)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(_WINDOWS, {"prefix": prefix})
        rows = await cur.fetchall()
    assert len(rows) == n, f"{name}: {len(rows)} of {n} renewals measured"
    return Round(name, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


async def main(n: int) -> None:
    logs.configure("warning", "json")
    with scratch_schema() as dsn, SimServer(dsn, pool_size=20) as sim:
        async with dev_server() as env, AsyncSimAdmin(sim.url) as admin:
            bench = Bench(env.client, dsn, sim.url)  # type: ignore[attr-defined]
            await bench.run(20, True)  # warm-up: server, caches, connections
            rounds = [
                await measure(bench, dsn, f"steady, {1 / PACE_S:.0f}/s (baseline)", n, PACE_S),
                await measure(bench, dsn, "burst, all at once", n, 0.0),
            ]
            await admin.configure(TLD, latency_ms=LATENCY_MS)
            rounds.append(
                await measure(bench, dsn, f"steady, provider latency {LATENCY_MS} ms", n, PACE_S)
            )
    base, burst, slow = rounds
    growth = percentile(burst.renew, 99) / percentile(base.renew, 99)
    extra = (percentile(slow.renew, 50) - percentile(base.renew, 50)) * 1000
    table = "\n".join(r.row() for r in rounds)
    body = f"""
{n} renewals per round, all interceptors on, the provider's limit never binding. Window =
from the gate read (the statement recording the step's start returns the gate) to the side
effect's arrival: the charge's row in the billing ledger; the renew's row in the registry
simulator's ledger (after its latency, before its answer). All times from one PostgreSQL clock.

| round | renewals | gate → charge, ms (p50 / p99 / max) | gate → renew at the registry, ms (p50 / p99 / max) | renewal life p50, ms | renew window p99 ÷ life p50 |
|---|---|---|---|---|---|
{table}

Under a burst the renew window's p99 is **{growth:.2f}x** the steady baseline's; a provider
answering in {LATENCY_MS} ms adds **{extra:.0f} ms** to its median (the latency is spent before
the registry records the renew). Between the gate read and the renew the activity takes the
renew lease (one statement) and calls the registry. What the window exposes, and why our own
writers cannot use it: ops/runbooks/duplicate-alert.md, "The guard's race window".
"""
    write_section(
        "Cross-engine guard: race window",
        f".venv/bin/python -m bench.guard_window --renewals {n}",
        body,
    )
    print(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renewals", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.renewals))
