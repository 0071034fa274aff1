"""Where the reconciler reads what happened outside the database: registry ledgers, Temporal.

Both fill a temporary table of the run's session, so every check stays one SQL statement:
- `reg_renewals`: renewals the registries performed (the ground truth for double renewals),
  from the simulator's ledger table in the same database, or from any registry's ledger API
  (a provider export in production) — two implementations of one port;
- `wf_states`: the state Temporal has for each renewal workflow, from visibility in bulk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

import structlog
from psycopg import AsyncConnection
from temporalio.client import Client

from dualrun.registry import RegistryClient

log = structlog.get_logger(__name__)

CREATE_TEMP_TABLES = """
CREATE TEMP TABLE reg_renewals (
    tld text NOT NULL, domain text NOT NULL, cur_exp_date date NOT NULL,
    previous_expiry date NOT NULL, new_expiry date NOT NULL, years int NOT NULL,
    server_tx_id text NOT NULL, client_tx_id text, created_at timestamptz NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE wf_states (
    workflow_id text PRIMARY KEY, run_id text, status text NOT NULL,
    start_time timestamptz, close_time timestamptz
) ON COMMIT DROP;
"""
_COPY_RENEWALS = (
    "COPY reg_renewals (tld, domain, cur_exp_date, previous_expiry, new_expiry, years,"
    " server_tx_id, client_tx_id, created_at) FROM STDIN"
)


class RegistryLedgerSource(Protocol):
    async def load(self, conn: AsyncConnection[Any], since: dt.datetime) -> int:
        """Fill `reg_renewals` with the renewals performed since `since`; return the count."""
        ...


class SimulatorTableLedger:
    """The simulator's ledger table, in the same database: one INSERT … SELECT."""

    async def load(self, conn: AsyncConnection[Any], since: dt.datetime) -> int:
        cur = await conn.execute(
            """INSERT INTO reg_renewals
               SELECT tld, domain, cur_exp_date, previous_expiry, new_expiry, years,
                      server_tx_id, client_tx_id, created_at
               FROM sim_renewals WHERE created_at >= %s""",
            (since,),
        )
        return cur.rowcount


class ApiLedger:
    """Any registry's ledger API, paged by id, copied in with COPY."""

    def __init__(self, registry: RegistryClient, tlds: Iterable[str], page: int = 5000) -> None:
        self.registry = registry
        self.tlds = sorted(tlds)
        self.page = page

    async def load(self, conn: AsyncConnection[Any], since: dt.datetime) -> int:
        total = 0
        for tld in self.tlds:
            after: int | None = None
            while True:
                rows = await self.registry.ledger(tld, since=since, after_id=after, limit=self.page)
                if not rows:
                    break
                async with conn.cursor().copy(_COPY_RENEWALS) as copy:
                    for r in rows:
                        await copy.write_row(
                            (
                                tld,
                                r.domain,
                                r.cur_exp_date,
                                r.previous_expiry,
                                r.new_expiry,
                                r.years,
                                r.server_tx_id,
                                r.client_tx_id,
                                r.created_at,
                            )
                        )
                total += len(rows)
                after = rows[-1].renewal_id
                if len(rows) < self.page:
                    break
        return total


async def load_workflow_states(
    conn: AsyncConnection[Any], client: Client, task_queue: str, since: dt.datetime
) -> int:
    """Every RenewDomain run on the queue started since `since`, listed from visibility."""
    query = (
        f'WorkflowType = "RenewDomain" AND TaskQueue = "{task_queue}"'
        f' AND StartTime >= "{since.astimezone(dt.UTC).isoformat()}"'
    )
    latest: dict[str, tuple[Any, ...]] = {}  # a reset or relaunch adds runs: keep the newest
    async for wf in client.list_workflows(query, page_size=1000):
        if wf.status is None:
            continue
        row = (wf.id, wf.run_id, wf.status.name, wf.start_time, wf.close_time)
        if wf.id not in latest or wf.start_time > latest[wf.id][3]:
            latest[wf.id] = row
    rows = list(latest.values())
    async with conn.cursor().copy(
        "COPY wf_states (workflow_id, run_id, status, start_time, close_time) FROM STDIN"
    ) as copy:
        for row in rows:
            await copy.write_row(row)
    log.info("reconcile.temporal.listed", workflows=len(rows))
    return len(rows)
