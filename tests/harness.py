"""A test harness for the Temporal side: settings on a test's own schema, simulator and queues."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker

from ops.registry_sim.admin import SimAdmin
from renewals.billing import BillingLedger
from renewals.db.pool import async_pool
from renewals.model import RenewalRequest
from renewals.registry import RegistryClient
from renewals.settings import Settings
from temporal_flow.activities import RenewalActivities
from temporal_flow.engine import TemporalEngine
from temporal_flow.starter import Started, renew_input, start_renewal
from temporal_flow.types import RunMode
from temporal_flow.worker import WorkerOptions, build_workers
from temporal_flow.workflows import RenewDomain

TODAY = dt.datetime.now(dt.UTC).date()


def settings_for(db_dsn: str, sim_url: str, **env: str) -> Settings:
    """Settings of one test: its schema, its simulator, its own task queues."""
    return Settings.from_env(
        {
            "DUALRUN_DATABASE_URL": db_dsn,
            "DUALRUN_REGISTRY_URL": sim_url,
            "DUALRUN_TASK_QUEUE": f"t-{uuid.uuid4().hex[:10]}",
            "DUALRUN_REGISTRY_TIMEOUT": "3",
            "DUALRUN_ACTIVITY_TIMEOUT": "6",
            **env,
        }
    )


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment a worker subprocess needs to serve this test's queues."""
    return {
        "DUALRUN_DATABASE_URL": settings.dsn,
        "DUALRUN_REGISTRY_URL": settings.registry_url or "",
        "DUALRUN_TASK_QUEUE": settings.task_queue,
        "DUALRUN_TEMPORAL_ADDRESS": settings.temporal_target,
        "DUALRUN_REGISTRY_TIMEOUT": str(settings.registry_timeout_s),
        "DUALRUN_ACTIVITY_TIMEOUT": str(settings.activity_timeout_s),
        "DUALRUN_REGISTRY_MAX_ATTEMPTS": str(settings.registry_max_attempts),
        "DUALRUN_REGISTRY_RATE_LIMITS": ",".join(
            f"{tld}={rate}" for tld, rate in settings.registry_rate_limits.items()
        ),
        "DUALRUN_LOG_FORMAT": "json",
    }


@dataclass
class Harness:
    settings: Settings
    client: Client
    pool: AsyncConnectionPool
    registry: RegistryClient
    admin: SimAdmin
    worker_pool: AsyncConnectionPool  # autocommit, as `dualrun worker` runs it
    counter: list[int] = field(default_factory=lambda: [0])

    def request(self, domain: str, expiry: dt.date, years: int = 1, **kw: Any) -> RenewalRequest:
        return RenewalRequest(
            domain,
            years,
            expiry,
            kw.get("customer_id", "cust-1"),
            kw.get("operation_id", f"op-{uuid.uuid4().hex[:12]}"),
        )

    def seed(self, tld: str, *domains: str, expiry: dt.date, **extra: Any) -> None:
        self.admin.seed_domains(tld, [{"domain": d, "expiry": expiry, **extra} for d in domains])

    async def charge(
        self, request: RenewalRequest, charge_key: str, amount_cents: int = 1099
    ) -> None:
        """A charge in the billing ledger for the request's renewal, under `charge_key`."""
        await BillingLedger(self.pool).charge(
            charge_key=charge_key,
            idempotency_key=request.idempotency_key,
            operation_id=request.operation_id,
            customer_id=request.customer_id,
            amount_cents=amount_cents,
            currency="EUR",
        )

    @property
    def engine(self) -> TemporalEngine:
        async def client() -> Client:
            return self.client

        return TemporalEngine(self.pool, self.settings, client)

    async def submit(self, request: RenewalRequest) -> Started:
        """Record the operation (engine temporal) and start its workflow, as the router does."""
        async with self.pool.connection() as conn, conn.transaction():
            await self.engine.submit(conn, request)
        inp = renew_input(request, RunMode.LIVE, self.settings)
        return await start_renewal(self.client, self.settings.task_queue, inp)

    async def result(self, workflow_id: str, within: float = 60) -> Any:
        handle = self.client.get_workflow_handle_for(RenewDomain.run, workflow_id)
        return await asyncio.wait_for(handle.result(), within)

    async def row(self, operation_id: str) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM operations WHERE operation_id = %s", (operation_id,))
            row = await cur.fetchone()
        assert row is not None
        return row

    async def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def net_charges(self, value: str, by: str = "idempotency_key") -> int:
        """Charges less refunds in the billing ledger whose `by` column (idempotency_key,
        charge_key, operation_id) is `value`."""
        if by not in ("idempotency_key", "charge_key", "operation_id"):
            raise ValueError(f"by: not a billing ledger key column: {by!r}")
        rows = await self.query(
            "SELECT count(*) FILTER (WHERE kind = 'charge')"
            f" - count(*) FILTER (WHERE kind = 'refund') AS n FROM billing_ledger WHERE {by} = %s",
            value,
        )
        return int(rows[0]["n"])

    async def wait_for(self, predicate: Any, within: float = 30, every: float = 0.05) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not await predicate():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(every)

    @asynccontextmanager
    async def workers(self, **options: Any) -> AsyncIterator[list[Worker]]:
        pool = self.worker_pool
        activities = RenewalActivities(pool, self.registry, BillingLedger(pool))
        workers = build_workers(
            self.client, self.settings, pool, activities, WorkerOptions(**options)
        )
        async with AsyncExitStack() as stack:
            for w in workers:
                await stack.enter_async_context(w)
            yield workers


@asynccontextmanager
async def harness(client: Client, db_dsn: str, sim_url: str, **env: str) -> AsyncIterator[Harness]:
    settings = settings_for(
        db_dsn, sim_url, DUALRUN_TEMPORAL_ADDRESS=client.service_client.config.target_host, **env
    )
    pool = await async_pool(settings.dsn, max_size=20)
    worker_pool = await async_pool(settings.dsn, max_size=20, autocommit=True)
    registry = RegistryClient(settings)
    try:
        with SimAdmin(sim_url) as admin:
            yield Harness(settings, client, pool, registry, admin, worker_pool)
    finally:
        await registry.aclose()
        await worker_pool.close()
        await pool.close()


def count(dsn: str, sql: str, *params: Any) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


HISTORIES = Path(__file__).parent / "histories"


async def save_history(h: Harness, workflow_id: str, name: str) -> None:
    """With DUALRUN_SAVE_HISTORIES=1, keep this run's history for the replay test."""
    if os.environ.get("DUALRUN_SAVE_HISTORIES") != "1":
        return
    history = await h.client.get_workflow_handle(workflow_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())


Cli = Callable[..., tuple[int, str, str]]


def cli_runner(env: dict[str, str], monkeypatch: Any, capsys: Any) -> Cli:
    """Run `dualrun ARGS` in process with `env` set: (exit status, stdout, stderr)."""
    from dualrun.cli.main import run

    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call
