"""What every benchmark shares: a scratch schema, the simulator, the Temporal dev server, and
the writer of bench/RESULTS.md (one section per benchmark, replaced on each run)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import psycopg

from dualrun.wiring import migrate_all
from renewals.db.pool import with_schema

RESULTS = Path(__file__).parent / "RESULTS.md"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_dsn() -> str:
    return os.environ.get("DUALRUN_BENCH_DATABASE_URL", DEFAULT_DSN)


@contextmanager
def scratch_schema() -> Iterator[str]:
    """A migrated schema of its own on the benchmark server, dropped afterwards."""
    base = server_dsn()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    dsn = with_schema(base, schema)
    try:
        migrate_all(dsn)
        yield dsn
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@asynccontextmanager
async def dev_server(*extra: str) -> AsyncIterator[object]:
    from temporalio.testing import WorkflowEnvironment

    from temporal_flow.search_attributes import DEV_SERVER_ARGS

    binary = Path(sys.executable).parent / "temporal"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary if binary.exists() else shutil.which("temporal")),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=[*DEV_SERVER_ARGS, *extra],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy so far (from /proc/stat; idle and iowait out)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def cpu_by_process() -> dict[str, float]:
    """CPU seconds so far of the parts a bench drives: this process (client, worker and the
    in-process simulator), the Temporal dev server, and PostgreSQL (every backend, with those
    that have exited counted in the postmaster's children's time)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"bench process": sum(os.times()[:2]), "Temporal dev server": 0.0, "PostgreSQL": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        own = (int(fields[11]) + int(fields[12])) / tick
        children = (int(fields[13]) + int(fields[14])) / tick
        if b"start-dev" in cmdline:
            out["Temporal dev server"] += own + children
        elif comm == "postgres":
            out["PostgreSQL"] += own + (children if fields[1] == "1" else 0.0)
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine() -> str:
    from importlib.metadata import version

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"temporalio {version('temporalio')}, psycopg {version('psycopg')}"
    )


def write_section(title: str, command: str, body: str) -> None:
    """Replace (or append) the `## title` section of bench/RESULTS.md."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"## {title}\n\n"
        f"Measured {stamp} on {machine()}.\n\n"
        f"Command: `{command}`\n\n{body.strip()}\n"
    )
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else (
            "# Benchmark results\n\nEvery figure is a ratio against a baseline measured in the "
            "same run, or a latency next to the figure it is compared with. Regenerate a section "
            "with its command.\n"
        )
    )
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(section + "\n", text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + section)
    )
    RESULTS.write_text(text.rstrip() + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[int]:
    """`dualrun serve` on a free port, until the block ends."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dualrun", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dualrun serve did not start; see {log}")
                time.sleep(0.2)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=30)
