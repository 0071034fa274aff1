"""Burst drain under a provider rate limit, against its theoretical minimum.

N renewals submitted at once on one TLD whose provider allows R calls/s (the simulator's token
bucket, and the same rate on our `registry-<tld>` queue). Each renewal makes 3 registry calls
(status, price, renew), so no engine can drain the burst faster than 3N/R seconds.

Run: `.venv/bin/python -m bench.burst_bench [--renewals 300] [--rate 40]`
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import dev_server, scratch_schema, write_section
from bench.temporal_bench import Bench
from ops.registry_sim.admin import AsyncSimAdmin
from ops.registry_sim.server import SimServer
from renewals import logs

CALLS_PER_RENEWAL = 3


async def main(n: int, rate: float) -> None:
    logs.configure("warning", "json")
    with scratch_schema() as dsn, SimServer(dsn, pool_size=20) as sim:
        async with dev_server() as env:
            bench = Bench(env.client, dsn, sim.url, rate=rate)  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            await bench.run(n, True)
            drained = time.perf_counter() - t0
            async with AsyncSimAdmin(sim.url) as admin:
                traffic = await admin.traffic("com")
    minimum = CALLS_PER_RENEWAL * n / rate
    body = f"""
{n} renewals submitted at once, provider limit {rate:g} calls/s (simulator and queue), 3 calls
per renewal; all interceptors on. The simulator rejected {traffic["rejected"]} calls (429).

| | seconds | ratio |
|---|---|---|
| theoretical minimum 3N/R (baseline) | {minimum:.1f} | 1.00 |
| measured drain, first submit to last `done` | {drained:.1f} | **{drained / minimum:.2f}** |
"""
    write_section(
        "Burst drain under a provider rate limit",
        f".venv/bin/python -m bench.burst_bench --renewals {n} --rate {rate:g}",
        body,
    )
    print(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renewals", type=int, default=300)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()
    asyncio.run(main(args.renewals, args.rate))
