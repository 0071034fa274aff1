"""Month-start at scale: how dualrun's cost grows with the work.

For each size (1,000, 3,000 and 10,000 renewals by default) a fresh embedded stack (PostgreSQL,
the Temporal dev server on its SQLite file, the registry simulator; flags from the bootstrap
file) runs the demo's month-start mix across all five TLDs at once (.fr temporal 100%, .de
temporal 25%, .info shadow, .com and .eu legacy), each provider at its rate limit:

- the router's share submitted through the HTTP API (`dualrun serve`, 16 keep-alive clients),
  while the upstream auto-renew batch writes its share straight into the legacy tables, a
  tenth of it twice (the month-start duplicates);
- both engines as real processes (two Temporal workers, the legacy engine's robots), until every
  operation has finished and every shadow plan is recorded; then `reconcile` over the window.

Per size: drain time against the provider-limit minimum (each TLD's admitted registry calls ÷
its rate; the slowest TLD's), machine CPU per renewal (/proc/stat, over the drain), the peak
memory (PSS) of each process group, database growth, 429 answers, and reconcile time.

Run: `.venv/bin/python -m bench.scale [--sizes 1000,3000,10000] [--rates com=5,...]`
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import shares
from bench.chart import line_chart
from bench.common import api_server, free_port, machine_busy_s, write_section
from bench.host_probe import HostProbe
from bench.http_load import post_all
from bench.intake_bench import TOKEN
from bench.proc_sampler import PeakMemory
from dualrun.demo.plan import FLAGS, DemoConfig
from dualrun.demo.processes import EngineProcesses
from dualrun.demo.run import prepare
from dualrun.wiring import reconciler, stack_down
from ops import stack
from ops.legacy_engine.autorenew import create_batch
from ops.registry_sim.admin import SimAdmin
from reconciler.model import Window
from renewals import logs
from renewals.db.pool import async_pool
from renewals.model import Mode
from renewals.operations import TERMINAL_SQL
from renewals.settings import Settings

# Near-balanced per-TLD minimums (a shadow renewal makes 5 registry calls, the others 3), low
# enough that the machine keeps up with every provider at once: about 9 renewals/s of this mix
# here, where two cores do about 11 (some 140 ms of machine CPU each, every process counted;
# at com=de=eu=fr=8, info=13 the box saturated and the drain measured it, not the providers).
# The drain is then bound by the providers, as at a registrar, not by this box.
RATES = "com=5,de=5,eu=5,fr=5,info=8"
SIZES = (1000, 3000, 10000)
# The legacy robots pace themselves at each provider's limit (`legacy-engine --pace`), as a
# registrar does once it has learnt. Unpaced, the reference robots retry each 429 blindly, an
# attempt each: at these limits they thrash and fail most month-start legacy renewals on their
# 5th attempt (at 3,000 renewals, 2,150 of 2,400 ended `failed` rate_limited, within 2.5 min),
# which drains those TLDs early and measures the thrash, not dualrun.
LEGACY_ARGS = ("--pace",)
# Robots work one renewal each; paced, a TLD's robots hold at most a second's worth of its calls
# (28 places at RATES), so 48 fill every provider's places with some to spare.
ROBOTS = 48


def _env(state: Path, rates: str) -> dict[str, str]:
    return {
        "DUALRUN_STATE_DIR": str(state),
        "DUALRUN_PG_PORT": str(free_port()),
        "DUALRUN_TEMPORAL_PORT": str(free_port()),
        "DUALRUN_TEMPORAL_UI_PORT": str(free_port()),
        "DUALRUN_REGISTRY_SIM_PORT": str(free_port()),
        "DUALRUN_UNLEASH_PORT": str(free_port()),
        "DUALRUN_REGISTRY_RATE_LIMITS": rates,
        "DUALRUN_API_TOKEN": TOKEN,
        "DUALRUN_LOG_FORMAT": "json",
        "DUALRUN_LOG_LEVEL": "info",
    }


async def _scalar(dsn: str, sql: str, *params: Any) -> Any:
    pool = await async_pool(dsn, max_size=1)
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute(sql, params)).fetchone()
        return row[0] if row else None
    finally:
        await pool.close()


async def _burst(settings: Settings, port: int, domains: Any, config: DemoConfig) -> int:
    """The router's share through the API while the upstream batch writes its own."""
    rows = [
        json.dumps(
            {
                "domain": r.domain,
                "years": r.years,
                "current_expiry": r.current_expiry.isoformat(),
                "customer_id": r.customer_id,
                "operation_id": r.operation_id,
            }
        ).encode()
        for r in domains.routed
    ]
    pool = await async_pool(settings.dsn, max_size=2)
    try:
        answers, batch = await asyncio.gather(
            post_all("127.0.0.1", port, "/renewals", TOKEN, rows, 16),
            create_batch(pool, domains.batch, duplicate_share=config.duplicate_share, seed=1),
        )
    finally:
        await pool.close()
    if set(answers.statuses) != {201}:
        raise RuntimeError(f"POST /renewals answered {dict(answers.statuses)}")
    return int(batch.created)


async def _drain(settings: Settings, shadowed: int, deadline_s: float) -> None:
    """Until no operation is unfinished (the partial index of open rows: a count that does
    not grow with the table) and every shadow plan is recorded."""
    started = time.monotonic()
    pool = await async_pool(settings.dsn, max_size=1)
    try:
        while time.monotonic() - started < deadline_s:
            async with pool.connection() as conn:
                open_ = await conn.execute(
                    f"SELECT count(*) FROM operations WHERE status NOT IN {TERMINAL_SQL}"
                )
                plans = await conn.execute("SELECT count(*) FROM shadow_plans WHERE plan = 'a'")
                unfinished = (await open_.fetchone() or (0,))[0]
                recorded = (await plans.fetchone() or (0,))[0]
            if unfinished == 0 and recorded >= shadowed:
                return
            await asyncio.sleep(1.0)
        raise RuntimeError(f"not drained within {deadline_s:.0f} s")
    finally:
        await pool.close()


async def _per_tld(dsn: str, since: dt.datetime) -> dict[str, dict[str, Any]]:
    """Per TLD: when its last operation finished (or shadow plan was recorded), in seconds from
    the first submit, and its renewals that ended `failed`, by error code."""
    pool = await async_pool(dsn, max_size=1)
    try:
        async with pool.connection() as conn:
            last = await conn.execute(
                "SELECT tld, extract(epoch FROM max(at) - %s)::float8 FROM ("
                " SELECT tld, finished_at AS at FROM operations"
                " UNION ALL SELECT tld, planned_at FROM shadow_plans) t GROUP BY tld",
                (since,),
            )
            ends = dict(await last.fetchall())
            failed = await conn.execute(
                "SELECT tld, coalesce(error_code, '?'), count(*) FROM operations"
                " WHERE status = 'failed' GROUP BY 1, 2"
            )
            codes: dict[str, dict[str, int]] = {}
            for tld, code, count in await failed.fetchall():
                codes.setdefault(tld, {})[code] = count
    finally:
        await pool.close()
    return {t: {"last_s": ends.get(t, 0.0), "failed": codes.get(t, {})} for t in sorted(ends)}


def _unused_by_tenth(
    seconds: list[dict[str, int]], start: float, drain_s: float, rate: float
) -> list[float]:
    """The provider's unused capacity in each tenth of the drain, in seconds of calls: the
    tenth's length less its admitted calls ÷ the rate (where the drain lost time against the
    minimum; a tenth after the TLD's own last call is all unused)."""
    first, admitted = int(start), [0] * 10
    for s in seconds:
        if first <= s["second"] < first + drain_s:
            admitted[min(9, int(10 * (s["second"] - first) / drain_s))] += s["admitted"]
    return [round(max(0.0, drain_s / 10 - n / rate), 1) for n in admitted]


def _groups(statuses: Any, engines: EngineProcesses, api_pid: int) -> dict[str, list[int]]:
    by_name = {s.name: s.pid for s in statuses if s.pid}
    return {
        "workers": [p.pid for p in engines.workers if p.poll() is None],
        "legacy robots": [engines.legacy.pid] if engines.legacy else [],
        "Temporal dev server": [by_name[n] for n in by_name if "temporal" in n],
        "PostgreSQL": [by_name[n] for n in by_name if "postgres" in n],
        "registry simulator": [by_name[n] for n in by_name if "registry" in n],
        "API": [api_pid],
    }


def one_size(n: int, rates: str) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix=f"dualrun-scale-{n}-", dir="/var/tmp"))
    os.environ.pop("DUALRUN_LEGACY_RATE_LIMITS", None)
    os.environ.update(_env(state, rates))
    settings = Settings.from_env()
    config = DemoConfig(
        renewals=n,
        commit_timeout_rate=0.0,
        kill_worker=False,
        seed=n,
        drain_timeout_s=3600,
        robots=ROBOTS,
    )
    domains, _, settings = prepare(settings, config, lambda _: None, unleash=False)
    # The simulator has each provider's whole limit; each engine gets its share (bench/shares.py).
    calls = asyncio.run(
        shares.calls_by_engine(
            settings, [r.domain for r in domains.routed], [r.domain for r in domains.batch]
        )
    )
    temporal_limits, legacy_limits = shares.split(settings, *calls)
    os.environ["DUALRUN_REGISTRY_RATE_LIMITS"] = shares.as_env(temporal_limits)
    os.environ["DUALRUN_LEGACY_RATE_LIMITS"] = shares.as_env(legacy_limits)
    statuses = stack.status(settings)
    engines = EngineProcesses(state / "logs", config.robots, legacy_args=LEGACY_ARGS)
    db_before = asyncio.run(_scalar(settings.dsn, "SELECT pg_database_size(current_database())"))
    shadowed = sum(1 for r in domains.routed if FLAGS[r.tld][0] == Mode.SHADOW)
    try:
        for _ in range(config.workers):
            engines.start_worker()
        engines.start_legacy()
        with api_server(dict(os.environ), state / "serve.log") as port:
            api_pid = int(next(p for p in Path("/proc").glob("[0-9]*") if _is_serve(p, port)).name)
            with (
                PeakMemory(lambda: _groups(statuses, engines, api_pid)) as memory,
                HostProbe() as probe,
            ):
                t0, c0, started_at = time.monotonic(), machine_busy_s(), dt.datetime.now(dt.UTC)
                batch_ops = asyncio.run(_burst(settings, port, domains, config))
                asyncio.run(_drain(settings, shadowed, config.drain_timeout_s))
                drained_s, cpu_s = time.monotonic() - t0, machine_busy_s() - c0
    finally:
        engines.stop()
    with SimAdmin.for_settings(settings) as admin:
        traffic = {tld: admin.traffic(tld) for tld in FLAGS}
    minimum = {tld: traffic[tld]["admitted"] / settings.rate_limit(tld) for tld in FLAGS}
    per_tld = asyncio.run(_per_tld(settings.dsn, started_at))
    for tld, row in per_tld.items():
        row["minimum_s"] = minimum.get(tld, 0.0)
        row["rejected"] = traffic.get(tld, {}).get("rejected", 0)
        row["unused_by_tenth"] = _unused_by_tenth(
            traffic[tld]["seconds"], started_at.timestamp(), drained_s, settings.rate_limit(tld)
        )
    r0 = time.monotonic()
    summary = asyncio.run(_reconcile(settings, started_at))
    reconcile_s = time.monotonic() - r0
    db_after = asyncio.run(_scalar(settings.dsn, "SELECT pg_database_size(current_database())"))
    temporal_db = sum(f.stat().st_size for f in (state / "temporal").glob("temporal.db*"))
    stack_down(settings)
    shutil.rmtree(state, ignore_errors=True)
    renewals = len(domains.routed) + len(domains.batch)
    return {
        "size": n,
        "renewals": renewals,
        "operations": len(domains.routed) + batch_ops,
        "drain_s": drained_s,
        "minimum_s": max(minimum.values()),
        "slowest_tld": max(minimum, key=lambda t: minimum[t]),
        "cpu_ms": 1000 * cpu_s / renewals,
        "rejected": sum(t["rejected"] for t in traffic.values()),
        "db_growth_mb": (db_after - db_before) / 2**20,
        "temporal_db_mb": temporal_db / 2**20,
        "reconcile_s": reconcile_s,
        "findings": summary,
        "peak_mb": dict(memory.peak_mb),
        "cpu_ms_by_group": {k: 1000 * v / renewals for k, v in memory.cpu_s.items()},
        "failed": sum(sum(r["failed"].values()) for r in per_tld.values()),
        "per_tld": per_tld,
        "temporal_limits": temporal_limits,
        "legacy_limits": legacy_limits,
        "shared_tlds": [t for t in FLAGS if temporal_limits[t] < settings.rate_limit(t)],
        "probe": probe.summary(),
    }


def _is_serve(proc: Path, port: int) -> bool:
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in argv and str(port).encode() in argv


async def _reconcile(settings: Settings, since: dt.datetime) -> dict[str, int]:
    window = Window(since - dt.timedelta(minutes=1), dt.datetime.now(dt.UTC))
    async with reconciler(settings) as rec:
        return (await rec.run(window, "manual", wait=True)).findings


def report(results: list[dict[str, Any]], rates: str) -> str:
    first = results[0]
    rows = "\n".join(
        f"| {r['renewals']:,} | {r['drain_s']:.0f} s | {r['minimum_s']:.0f} s (.{r['slowest_tld']})"
        f" | **{r['drain_s'] / r['minimum_s']:.2f}** | {r['cpu_ms']:.0f} ms |"
        f" **{r['cpu_ms'] / first['cpu_ms']:.2f}** | {r['failed']} | {r['rejected']} |"
        f" {r['db_growth_mb']:.0f} MB (+{r['temporal_db_mb']:.0f} MB Temporal) |"
        f" {r['reconcile_s']:.1f} s |"
        for r in results
    )
    tlds = sorted(first["per_tld"])
    engines = {
        t: FLAGS[t][0].value + (f" {FLAGS[t][1]}%" if FLAGS[t][1] < 100 else "") for t in tlds
    }
    per_tld = "\n".join(
        f"| {r['renewals']:,} | "
        + " | ".join(
            f"{row['last_s']:.0f} ÷ {row['minimum_s']:.0f} = {row['last_s'] / row['minimum_s']:.2f}"
            + (f", {sum(row['failed'].values())} failed" if row["failed"] else "")
            for row in (r["per_tld"][t] for t in tlds)
        )
        + " |"
        for r in results
    )
    last = results[-1]
    unused = "\n".join(
        f"| .{t} | " + " | ".join(f"{v:.0f}" for v in last["per_tld"][t]["unused_by_tenth"]) + " |"
        for t in tlds
    )
    names = list(first["peak_mb"])
    memory = "\n".join(
        f"| {r['renewals']:,} | " + " | ".join(f"{r['peak_mb'][k]:.0f}" for k in names) + " |"
        for r in results
    )
    cpu = "\n".join(
        f"| {r['renewals']:,} | "
        + " | ".join(
            f"{r['cpu_ms_by_group'][k]:.1f} ({r['cpu_ms_by_group'][k] / first['cpu_ms_by_group'][k]:.2f})"
            for k in names
        )
        + " |"
        for r in results
    )
    chart = line_chart(
        "Machine CPU per renewal, and drain time ÷ the provider-limit minimum",
        [r["renewals"] for r in results],
        {
            "CPU ms per renewal": [r["cpu_ms"] for r in results],
            "drain ÷ minimum, x100": [100 * r["drain_s"] / r["minimum_s"] for r in results],
        },
        x_label="renewals in the burst",
        y_label="ms per renewal; ratio x100",
    )
    findings = {r["renewals"]: r["findings"] for r in results}
    speed = {r["renewals"]: r["probe"]["median_ms"] / first["probe"]["median_ms"] for r in results}
    calibrated = "\n".join(
        f"| {r['renewals']:,} | {r['probe']['median_ms']:.1f} ms"
        f" ({r['probe']['p10_ms']:.1f} to {r['probe']['p90_ms']:.1f}) | {r['cpu_ms']:.0f} ms |"
        f" {r['cpu_ms'] / speed[r['renewals']]:.0f} ms |"
        f" **{r['cpu_ms'] / speed[r['renewals']] / first['cpu_ms']:.2f}** |"
        for r in results
    )
    shared = last["shared_tlds"]
    return f"""
Provider limits (calls/s): {rates}. Per size, a fresh embedded stack; the demo's mix (.fr
temporal 100%, .de temporal 25%, .info shadow, .com and .eu legacy; a fifth of the legacy
TLDs' renewals from the upstream auto-renew batch, a tenth of those twice); no injected
faults. The minimum is each TLD's admitted registry calls ÷ its rate, the slowest TLD's.
CPU is the whole machine's busy time from the first submit to the last operation finished,
per renewal; the ratio column is that against the smallest size (target at 10,000: ≤ 1.15).
The legacy robots pace their calls at each provider's limit (`legacy-engine --pace`; unpaced
they retry each 429 blindly and fail most month-start legacy renewals on their 5th attempt):
a TLD's robots hold at most a second's worth of its calls, and wait a 429 out in place. On .de
and .info both engines call one provider: each is paced at its share of the limit, split by
the calls it will make, as runbooks/month-start.md sets Temporal's (`bench/shares.py`; at
{last["renewals"]:,}, Temporal {shares.as_env({t: last["temporal_limits"][t] for t in shared})},
legacy {shares.as_env({t: last["legacy_limits"][t] for t in shared})}). "failed": renewals that
ended `failed`, whatever the code.

| renewals | drain | provider-limit minimum | drain ÷ minimum (≤ 1.1) | CPU per renewal | vs the smallest | failed | 429s | database growth | reconcile |
|---|---|---|---|---|---|---|---|---|---|
{rows}

The host's speed through each drain (`bench/host_probe.py`: the thread CPU of one fixed
pure-Python workload, sampled every 5 s; this VM's varies by up to 40% minute to minute), and
CPU per renewal divided by the probe's median relative to the smallest size's:

| renewals | probe median (p10 to p90) | CPU per renewal | calibrated | calibrated vs the smallest |
|---|---|---|---|---|
{calibrated}

Each TLD's drain (its last operation finished or shadow plan recorded, from the first submit)
÷ its own minimum, in seconds:

| renewals | {" | ".join(f".{t} ({engines[t]})" for t in tlds)} |
|---|{"---|" * len(tlds)}
{per_tld}

Where the largest burst ({last["renewals"]:,}) lost its time: each provider's unused capacity
in each tenth of the drain: the tenth's length less its admitted calls ÷ the rate, in seconds.

| TLD | {" | ".join(f"{10 * i} to {10 * i + 10}%" for i in range(10))} |
|---|{"---|" * 10}
{unused}

CPU per renewal of each process group (ms; in brackets, against the smallest size):

| renewals | {" | ".join(names)} |
|---|{"---|" * len(names)}
{cpu}

Peak memory of each process group (PSS, MB; PostgreSQL with its backends):

| renewals | {" | ".join(names)} |
|---|{"---|" * len(names)}
{memory}

Findings of each size's reconcile: {findings}. Expected: the batch's twins, superseded at
birth (one renewal, one operation), are each a `duplicate_operation`; nothing else.

{chart}
"""


TITLE = "Scale: month-start bursts of growing size"


def main(sizes: tuple[int, ...], rates: str, title: str = TITLE) -> None:
    logs.configure("warning", "json")
    results = []
    for n in sizes:
        print(f"== {n} renewals", flush=True)
        results.append(one_size(n, rates))
        print(json.dumps(results[-1], default=str), flush=True)
    write_section(
        title,
        ".venv/bin/python -m bench.scale --sizes "
        + ",".join(str(n) for n in sizes)
        + f" --rates {rates}"
        + (f' --title "{title}"' if title != TITLE else ""),
        report(results, rates),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--rates", default=RATES)
    parser.add_argument("--title", default=TITLE, help="the RESULTS.md section to write")
    args = parser.parse_args()
    main(tuple(int(v) for v in args.sizes.split(",")), args.rates, args.title)
