"""Temporal renewal benchmarks, each against a baseline measured in the same run.

1. Interceptor overhead: RenewDomain with the three interceptors vs the same workflow and
   activities without them; same dev server, same process, alternating batches.
2. Submit-to-done latency at a steady 10 renewals/s, next to the legacy engine's figure.

Run: `.venv/bin/python -m bench.temporal_bench [--renewals N]`
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid
from dataclasses import replace

from bench.common import dev_server, percentile, scratch_schema, write_section
from dualrun import logs
from dualrun.billing import BillingLedger
from dualrun.db.pool import async_pool
from dualrun.model import RenewalRequest
from dualrun.registry import RegistryClient
from dualrun.settings import Settings
from ops.registry_sim.admin import AsyncSimAdmin
from ops.registry_sim.server import SimServer
from temporal_flow.activities import RenewalActivities
from temporal_flow.starter import submit_live
from temporal_flow.worker import WorkerOptions, build_workers
from temporal_flow.workflows import RenewDomain

TLD = "com"
EXPIRY = dt.date.today() + dt.timedelta(days=40)


class Bench:
    def __init__(self, client: object, dsn: str, sim_url: str, rate: float = 100000.0) -> None:
        """`rate`: the provider's limit, both at the simulator and on our registry queue."""
        self.client = client
        self.rate = rate
        self.settings = Settings.from_env(
            {
                "DUALRUN_DATABASE_URL": dsn,
                "DUALRUN_REGISTRY_URL": sim_url,
                "DUALRUN_REGISTRY_RATE_LIMITS": f"{TLD}={rate}",
                "DUALRUN_REGISTRY_CONCURRENCY": f"{TLD}=200",
            }
        )
        self.sim_url = sim_url
        self.batch = 0

    async def _seed(self, n: int) -> list[str]:
        self.batch += 1
        prefix = f"b{self.batch:02d}-"
        async with AsyncSimAdmin(self.sim_url) as admin:
            await admin.configure(TLD, rate_limit=self.rate, burst=max(1, int(self.rate)))
            await admin.seed_generated(TLD, n, prefix=prefix, expiry_from=EXPIRY, expiry_to=EXPIRY)
        return [f"{prefix}{i:06d}.{TLD}" for i in range(1, n + 1)]

    async def run(self, n: int, interceptors: bool, pace_s: float = 0.0) -> list[float]:
        """Submit n renewals (every pace_s seconds, or all at once); per-renewal latencies."""
        domains = await self._seed(n)
        settings = replace(self.settings, task_queue=f"bench-{uuid.uuid4().hex[:8]}")
        pool = await async_pool(settings.dsn, max_size=40)
        registry = RegistryClient(settings, max_connections=200)
        acts = RenewalActivities(pool, registry, BillingLedger(pool))
        options = WorkerOptions(interceptors=interceptors, max_concurrent_activities=200)
        workers = build_workers(self.client, settings, pool, acts, options)  # type: ignore[arg-type]
        latencies: list[float] = []

        async def one(domain: str) -> None:
            request = RenewalRequest(domain, 1, EXPIRY, "bench", f"op-{uuid.uuid4().hex}")
            t0 = time.perf_counter()
            started = await submit_live(pool, self.client, settings, request)  # type: ignore[arg-type]
            handle = self.client.get_workflow_handle_for(  # type: ignore[attr-defined]
                RenewDomain.run, started.workflow_id
            )
            result = await handle.result()
            assert result.status == "done", result
            latencies.append(time.perf_counter() - t0)

        try:
            for w in workers:
                await w.__aenter__()
            tasks = []
            for domain in domains:
                tasks.append(asyncio.create_task(one(domain)))
                if pace_s:
                    await asyncio.sleep(pace_s)
            await asyncio.gather(*tasks)
        finally:
            for w in reversed(workers):
                await w.__aexit__(None, None, None)
            await registry.aclose()
            await pool.close()
        return latencies


async def main(renewals: int, rounds: int) -> None:
    logs.configure("warning", "json")  # the benchmark measures the engine, not log rendering
    with scratch_schema() as dsn, SimServer(dsn, pool_size=20) as sim:
        async with dev_server() as env:
            bench = Bench(env.client, dsn, sim.url)  # type: ignore[attr-defined]
            await bench.run(20, True)  # warm-up: server, caches, connections
            with_s: list[float] = []
            without_s: list[float] = []
            for _ in range(rounds):
                for flag, bucket in ((True, with_s), (False, without_s)):
                    t0 = time.perf_counter()
                    await bench.run(renewals, flag)
                    bucket.append(time.perf_counter() - t0)
            tput_with = renewals * len(with_s) / sum(with_s)
            tput_without = renewals * len(without_s) / sum(without_s)
            steady = await bench.run(100, True, pace_s=0.1)
    ratio = tput_with / tput_without
    p50, p95, worst = (percentile(steady, 50), percentile(steady, 95), max(steady))
    body = f"""
### Interceptor overhead (target: throughput ratio ≥ 0.8)

{rounds} alternating rounds of {renewals} renewals each, all submitted at once, on one in-memory
dev server; "without" runs the same workflow and activities with no interceptor (no
database sync, no cancellation checks, registry calls on the main queue).

| variant | throughput (renewals/s) |
|---|---|
| with the three interceptors | {tput_with:.1f} |
| without interceptors (baseline) | {tput_without:.1f} |
| **ratio** | **{ratio:.2f}** |

### Submit-to-done latency at a steady 10 renewals/s

100 renewals, one every 100 ms, with all interceptors; from the submit (operation row insert
+ workflow start) to the workflow's result (the row is `done` just before).

| p50 | p95 | max |
|---|---|---|
| {p50 * 1000:.0f} ms | {p95 * 1000:.0f} ms | {worst * 1000:.0f} ms |

Compare with the legacy engine's figure in "Legacy engine: submit-to-done latency".
"""
    write_section(
        "Temporal renewal workflow",
        f".venv/bin/python -m bench.temporal_bench --renewals {renewals} --rounds {rounds}",
        body,
    )
    print(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renewals", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.renewals, args.rounds))
