"""Legacy engine: submit-to-done latency of one renewal with the default poll interval.

N sequential renewals (each submitted once the previous one reads `done`) through the
LegacyEngine, run by a one-robot LegacyEngine with its default settings (5 s poll interval),
against the in-process registry simulator, on a scratch schema of DUALRUN_BENCH_DATABASE_URL
(default: the machine's PostgreSQL on 127.0.0.1:5432). Prints p50/p95 and replaces the section
"Legacy engine: submit-to-done latency" of bench/RESULTS.md.

Run: `.venv/bin/python -m bench.legacy_latency [--renewals 5]`
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass

from bench.common import percentile, scratch_schema, write_section
from legacy_adapter import LegacyEngine
from ops.legacy_engine.robots import RobotConfig, Robots
from ops.registry_sim.admin import AsyncSimAdmin
from ops.registry_sim.server import SimServer
from renewals import logs, operations
from renewals.billing import BillingLedger
from renewals.db.pool import async_pool
from renewals.model import Operation, OperationStatus, RenewalRequest
from renewals.registry import RegistryClient

TITLE = "Legacy engine: submit-to-done latency"
TLD = "com"
EXPIRY = dt.date.today() + dt.timedelta(days=40)


@dataclass(frozen=True)
class Sample:
    total_s: float  # submit (row inserted) to `done` read back
    waiting_s: float  # created_at to started_at: until a robot's poll found it
    working_s: float  # started_at to finished_at: the five steps


async def finished(adapter: LegacyEngine, operation_id: str) -> Operation:
    """Read the outcome every 10 ms until it is final."""
    while True:
        outcome = await operations.get(adapter.pool, operation_id)
        if outcome.status.terminal:
            return outcome
        await asyncio.sleep(0.01)


async def measure(dsn: str, sim_url: str, n: int) -> tuple[RobotConfig, list[Sample]]:
    async with AsyncSimAdmin(sim_url) as admin:
        await admin.seed_generated(TLD, n, prefix="lat-", expiry_from=EXPIRY, expiry_to=EXPIRY)
    domains = [f"lat-{i:06d}.{TLD}" for i in range(1, n + 1)]
    pool = await async_pool(dsn, max_size=4)
    registry = RegistryClient(base_url=sim_url)
    config = RobotConfig(robots=1, owner="bench")  # the defaults: 5 s poll interval
    engine = Robots(pool, registry, BillingLedger(pool), config)
    adapter = LegacyEngine(pool)
    stop = asyncio.Event()
    robots = asyncio.create_task(engine.run(stop))
    samples: list[Sample] = []
    try:
        await asyncio.sleep(0.5)  # the robot's first (empty) poll: every sample in the same phase
        for domain in domains:
            request = RenewalRequest(domain, 1, EXPIRY, "bench", f"op-{uuid.uuid4().hex[:12]}")
            start = time.perf_counter()
            await adapter.create(request)
            outcome = await finished(adapter, request.operation_id)
            total = time.perf_counter() - start
            if outcome.status != OperationStatus.DONE:
                raise RuntimeError(f"{domain}: {outcome.status} ({outcome.error_message})")
            assert outcome.created_at and outcome.started_at and outcome.finished_at
            samples.append(
                Sample(
                    total,
                    (outcome.started_at - outcome.created_at).total_seconds(),
                    (outcome.finished_at - outcome.started_at).total_seconds(),
                )
            )
            print(f"{domain}: {total * 1000:.0f} ms", flush=True)
    finally:
        stop.set()
        await robots
        await registry.aclose()
        await pool.close()
    return config, samples


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.0f} ms"


def report(config: RobotConfig, samples: list[Sample], command: str) -> str:
    total = [s.total_s for s in samples]
    waiting = [s.waiting_s for s in samples]
    working = [s.working_s for s in samples]
    return f"""
{len(samples)} sequential renewals (each submitted once the previous one read back `done`),
one robot with the default settings (poll interval {config.poll_interval_s:g} s), in-process
registry simulator without injected latency. Latency runs from the submit (operation row
inserted) to the outcome reading `done`; it splits into waiting for a robot's poll to find the
row and the five steps themselves.

| | p50 | p95 | max |
|---|---|---|---|
| submit to done | {ms(total, 50)} | {ms(total, 95)} | {ms(total, 100)} |
| waiting for a poll | {ms(waiting, 50)} | {ms(waiting, 95)} | {ms(waiting, 100)} |
| the five steps | {ms(working, 50)} | {ms(working, 95)} | {ms(working, 100)} |

Each submit lands just after the robot's last empty poll (it polled right after finishing the
previous renewal), so this is the worst phase: about one full poll interval of waiting. A
renewal arriving at a random moment waits half an interval on average; the steps take the same
time either way (last row). Compare with the Temporal figure in "Temporal renewal workflow".
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renewals", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    logs.configure("warning", "console")
    with scratch_schema() as dsn, SimServer(dsn) as sim:
        config, samples = asyncio.run(measure(dsn, sim.url, args.renewals))
    total = [s.total_s for s in samples]
    print(f"p50 {ms(total, 50)}  p95 {ms(total, 95)}  max {ms(total, 100)}")
    command = ".venv/bin/python -m bench.legacy_latency" + (
        f" --renewals {args.renewals}" if args.renewals != 5 else ""
    )
    if not args.no_write:
        write_section(TITLE, command, report(config, samples, command))


if __name__ == "__main__":
    main()
