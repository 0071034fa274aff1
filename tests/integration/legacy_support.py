"""The legacy side of a test: its schema, simulator, pool and adapter, and `dualrun` processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import IO, Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from legacy_adapter import LegacyEngine
from ops.legacy_engine.robots import EngineStats, RobotConfig, Robots
from ops.registry_sim.admin import SimAdmin
from ops.registry_sim.server import SimServer
from renewals.billing import BillingLedger
from renewals.db.pool import async_pool
from renewals.model import RenewalRequest
from renewals.registry import RegistryClient
from tests.harness import TODAY

EXPIRY = TODAY + dt.timedelta(days=25)
PRICE = {"com": 1299, "fr": 1099, "info": 1599}  # the simulator's standard yearly prices
STEP_EVENTS = [
    "created",
    "status.started",
    "price.started",
    "price.done",
    "charge.started",
    "charge.done",
    "renew.started",
    "record.done",
]
FAST = RobotConfig(
    robots=1, poll_interval_s=0.05, lease_s=5.0, retry_delay_s=0.2, max_attempts=5, owner="test"
)


@dataclass
class Legacy:
    """One test's legacy side: its schema, its simulator, a pool, the adapter."""

    dsn: str
    sim_url: str
    pool: AsyncConnectionPool
    registry: RegistryClient
    admin: SimAdmin
    adapter: LegacyEngine

    def request(self, domain: str, expiry: dt.date = EXPIRY, years: int = 1) -> RenewalRequest:
        return RenewalRequest(domain, years, expiry, "cust-1", f"op-{uuid.uuid4().hex[:12]}")

    def seed(self, tld: str, *domains: str, expiry: dt.date = EXPIRY, **extra: Any) -> None:
        self.admin.seed_domains(tld, [{"domain": d, "expiry": expiry, **extra} for d in domains])

    async def submit(self, domain: str, expiry: dt.date = EXPIRY) -> str:
        outcome = await self.adapter.create(self.request(domain, expiry))
        return outcome.operation_id

    def engine(self, registry: RegistryClient | None = None, **config: Any) -> Robots:
        return Robots(
            self.pool, registry or self.registry, BillingLedger(self.pool), replace(FAST, **config)
        )

    async def drain(
        self, within: float = 60, registry: RegistryClient | None = None, **config: Any
    ) -> EngineStats:
        """Run robots until no legacy work is left."""
        engine = self.engine(registry, drain=True, **config)
        return await asyncio.wait_for(engine.run(), within)

    @asynccontextmanager
    async def running(self, **config: Any) -> AsyncIterator[Robots]:
        """Robots running in the background for the block, stopped (and awaited) after it."""
        engine = self.engine(**config)
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop))
        try:
            yield engine
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    async def row(self, operation_id: str) -> dict[str, Any]:
        rows = await self.query("SELECT * FROM operations WHERE operation_id = %s", operation_id)
        assert len(rows) == 1
        return rows[0]

    async def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def count(self, sql: str, *params: Any) -> int:
        return int((await self.query(sql, *params))[0]["n"])

    async def charges(self, operation_id: str) -> list[tuple[str, int]]:
        rows = await self.query(
            "SELECT kind, amount_cents FROM billing_ledger WHERE operation_id = %s"
            " ORDER BY entry_id",
            operation_id,
        )
        return [(r["kind"], r["amount_cents"]) for r in rows]

    async def until(
        self, operation_id: str, check: Callable[[dict[str, Any]], bool], within: float = 30
    ) -> dict[str, Any]:
        """Poll the operation row until `check` holds (or fail after `within` seconds)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            row = await self.row(operation_id)
            if check(row):
                return row
            assert asyncio.get_running_loop().time() < deadline, f"not reached: {row}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def legacy(db_dsn: str, sim: SimServer) -> AsyncIterator[Legacy]:
    pool = await async_pool(db_dsn, max_size=12)
    registry = RegistryClient(base_url=sim.url, timeout_s=5)
    try:
        with SimAdmin(sim.url) as admin:
            yield Legacy(db_dsn, sim.url, pool, registry, admin, LegacyEngine(pool))
    finally:
        await registry.aclose()
        await pool.close()


# -- real processes ------------------------------------------------------------------------------
def cli_env(legacy: Legacy) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DUALRUN_DATABASE_URL": legacy.dsn,
        "DUALRUN_REGISTRY_URL": legacy.sim_url,
        "DUALRUN_REGISTRY_TIMEOUT": "5",
        "DUALRUN_LOG_FORMAT": "json",
    }


@contextmanager
def dualrun(
    args: Sequence[str], env: dict[str, str], stdout: IO[bytes] | int, stderr: IO[bytes] | int
) -> Iterator[subprocess.Popen[bytes]]:
    """A `python -m dualrun ...` process in its own process group, SIGKILLed if still alive."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dualrun", *args],
        env=env,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_cli(legacy: Legacy, *args: str, within: float = 60) -> tuple[int, str, str]:
    """Run one `dualrun` command to its end: (exit status, stdout, stderr)."""
    with dualrun(args, cli_env(legacy), subprocess.PIPE, subprocess.PIPE) as proc:
        out, err = proc.communicate(timeout=within)
    return proc.returncode, out.decode(), err.decode()


def log_events(stderr: str, event: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


async def poll(predicate: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
