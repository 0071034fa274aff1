"""Intake: how fast renewals are handed over through the HTTP API, against the bare floor of
the same work measured in the same run.

- floor (baseline): one asyncio process, C at a time, per renewal one INSERT of its
  operation row (autocommit) and one `start_workflow` (the same input, id and search
  attributes as ours): the least any intake must do;
- single: `dualrun serve` (a real uvicorn process) answering `POST /renewals`, C keep-alive
  clients; every renewal routed (all TLDs temporal 100%), recorded, decision pinned, started;
- bulk: `POST /renewals/batch` of 1,000 rows a call, from `max(1, C // 8)` callers.

No worker runs: the workflows wait on their queue; the figure is the hand-over, as a
month-start batch meets it. Phases alternate in ABBA order (floor, single, single, floor, ...)
on one in-memory dev server, so its drift as histories pile up weighs on both sides alike.
CPU is the whole machine's busy time per renewal (/proc/stat).

Run: `.venv/bin/python -m bench.intake_bench [--renewals 1000] [--rounds 2] [--clients 16]`
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import api_server, dev_server, machine_busy_s, scratch_schema, write_section
from bench.http_load import post_all
from dualrun.flags.control import set_rule
from dualrun.flags.model import RuleChange
from renewals import logs
from renewals.db.pool import async_pool
from renewals.model import Mode, RenewalRequest, new_operation_id
from renewals.settings import Settings
from temporal_flow.starter import renew_input, start_renewal
from temporal_flow.types import RunMode

TOKEN = "bench-intake-token"
TLDS = ("com", "de", "eu", "fr", "info")
EXPIRY = dt.date.today() + dt.timedelta(days=40)
BATCH_ROWS = 1000
PATHS = ("floor", "single", "bulk")
FLOOR_INSERT = """
INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status, workflow_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'temporal', 'router', 'todo', %s)
"""


def _domains(phase: str, n: int) -> list[str]:
    return [f"{phase}-{i:06d}.{TLDS[i % len(TLDS)]}" for i in range(n)]


async def floor(client: Any, settings: Settings, domains: list[str], clients: int) -> None:
    pool = await async_pool(settings.dsn, max_size=clients, autocommit=True)
    sem = asyncio.Semaphore(clients)

    async def one(domain: str) -> None:
        request = RenewalRequest(domain, 1, EXPIRY, "bench", new_operation_id())
        async with sem:
            async with pool.connection() as conn:
                await conn.execute(
                    FLOOR_INSERT,
                    (
                        request.operation_id,
                        request.idempotency_key,
                        request.domain,
                        request.tld,
                        request.years,
                        request.current_expiry,
                        request.customer_id,
                        request.idempotency_key,
                    ),
                )
            inp = renew_input(request, RunMode.LIVE, settings)
            await start_renewal(client, settings.task_queue, inp)

    try:
        await asyncio.gather(*(one(d) for d in domains))
    finally:
        await pool.close()


def _row(domain: str) -> dict[str, Any]:
    return {
        "domain": domain,
        "years": 1,
        "current_expiry": EXPIRY.isoformat(),
        "customer_id": "bench",
    }


async def single(port: int, domains: list[str], clients: int) -> None:
    bodies = [json.dumps(_row(d)).encode() for d in domains]
    answers = await post_all("127.0.0.1", port, "/renewals", TOKEN, bodies, clients)
    if set(answers.statuses) != {201}:
        raise RuntimeError(f"POST /renewals answered {dict(answers.statuses)}")


async def bulk(port: int, domains: list[str], callers: int) -> None:
    bodies = [
        json.dumps({"renewals": [_row(d) for d in domains[i : i + BATCH_ROWS]]}).encode()
        for i in range(0, len(domains), BATCH_ROWS)
    ]
    answers = await post_all(
        "127.0.0.1", port, "/renewals/batch", TOKEN, bodies, callers, keep_bodies=True
    )
    if set(answers.statuses) != {200}:
        raise RuntimeError(f"POST /renewals/batch answered {dict(answers.statuses)}")
    created = sum(b["summary"]["created"] for b in answers.bodies)
    if created != len(domains):
        raise RuntimeError(f"bulk: {created} of {len(domains)} created")


async def main(renewals: int, rounds: int, clients: int, paths: tuple[str, ...] = PATHS) -> None:
    logs.configure("warning", "json")
    wall: dict[str, list[float]] = {n: [] for n in paths}
    cpu: dict[str, list[float]] = {n: [] for n in paths}
    callers = max(1, clients // 8)
    with scratch_schema() as dsn, tempfile.TemporaryDirectory() as state:
        async with dev_server() as env:
            client = env.client  # type: ignore[attr-defined]
            env_vars = {
                "DUALRUN_DATABASE_URL": dsn,
                "DUALRUN_TEMPORAL_ADDRESS": client.service_client.config.target_host,
                "DUALRUN_STATE_DIR": state,
                "DUALRUN_API_TOKEN": TOKEN,
                "DUALRUN_LOG_FORMAT": "json",
            }
            settings = Settings.from_env(env_vars)
            for tld in TLDS:
                set_rule(settings, RuleChange(tld, Mode.TEMPORAL, 100))
            with api_server(env_vars, Path(state) / "serve.log") as port:
                await single(port, _domains("warm", 200), clients)  # warm-up: both paths
                await floor(client, settings, _domains("warmf", 200), clients)
                phases = 0
                for i in range(rounds):
                    order = list(paths) if i % 2 == 0 else list(paths)[::-1]
                    for name in order:
                        phases += 1
                        domains = _domains(f"p{phases:02d}", renewals)
                        t0, c0 = time.perf_counter(), machine_busy_s()
                        if name == "floor":
                            await floor(client, settings, domains, clients)
                        elif name == "single":
                            await single(port, domains, clients)
                        else:
                            await bulk(port, domains, callers)
                        wall[name].append(time.perf_counter() - t0)
                        cpu[name].append(machine_busy_s() - c0)
                    print(
                        f"round {i + 1}/{rounds}: "
                        + ", ".join(f"{n} {renewals / wall[n][-1]:.0f}/s" for n in wall),
                        flush=True,
                    )
    if set(paths) != set(PATHS):  # an exploratory subset: the round lines above are the result
        return
    rate = {n: renewals * rounds / sum(wall[n]) for n in wall}
    cpu_ms = {n: 1000 * sum(cpu[n]) / (renewals * rounds) for n in wall}
    spread = {
        n: sorted(f / w for f, w in zip(wall["floor"], wall[n], strict=True))
        for n in ("single", "bulk")
    }
    body = f"""
{rounds} rounds of {renewals:,} renewals per path (five TLDs, all temporal 100%), each round in
the order floor, single, bulk, reversed every other round, on one in-memory dev server with no
worker (the hand-over alone). The floor is one asyncio process doing, {clients} at a time, one
INSERT of the operation row (autocommit) and one `start_workflow` per renewal. "single" is
`dualrun serve` answering `POST /renewals` to {clients} keep-alive clients (routed, recorded
with its pinned decision, started); "bulk" is `POST /renewals/batch` of {BATCH_ROWS:,} rows a
call from {callers} caller(s). CPU is the whole machine's busy time per renewal.

| path | renewals/s | ratio to the floor | machine CPU per renewal |
|---|---|---|---|
| floor: INSERT + `start_workflow` (baseline) | {rate["floor"]:.0f} | 1.00 | {cpu_ms["floor"]:.1f} ms |
| `POST /renewals`, {clients} clients | {rate["single"]:.0f} | **{rate["single"] / rate["floor"]:.2f}** (per round {spread["single"][0]:.2f} to {spread["single"][-1]:.2f}; target ≥ 0.85) | {cpu_ms["single"]:.1f} ms |
| `POST /renewals/batch`, {BATCH_ROWS:,} a call | {rate["bulk"]:.0f} | **{rate["bulk"] / rate["floor"]:.2f}** (per round {spread["bulk"][0]:.2f} to {spread["bulk"][-1]:.2f}) | {cpu_ms["bulk"]:.1f} ms |
"""
    write_section(
        "Intake: renewals handed over through the HTTP API",
        f".venv/bin/python -m bench.intake_bench --renewals {renewals} --rounds {rounds}"
        f" --clients {clients}",
        body,
    )
    print(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renewals", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--paths", default=",".join(PATHS), help="a subset, e.g. floor,single")
    args = parser.parse_args()
    asyncio.run(main(args.renewals, args.rounds, args.clients, tuple(args.paths.split(","))))
