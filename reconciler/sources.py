"""Where the reconciler reads what happened outside the operations table.

- Registry renewals (the ground truth for double renewals), behind one port: a source makes
  the renewals performed since the window's start available as a table the checks join, and
  says which (`LedgerRelation`, data: a table name and how it is scoped, never SQL text).
  `ApiLedger` copies any registry's ledger API (a provider export in production) into
  `recon_renewals`; the registry simulator's source (in `ops`) names its own table in place.
- Temporal's state for each renewal workflow, listed from visibility in bulk into
  `recon_wf_states`.
Both scratch tables are keyed by run, so checks can run in parallel on separate connections.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from psycopg import AsyncConnection, sql
from temporalio.client import Client

from renewals.queues import WORKFLOW_TYPE
from renewals.registry import RegistryClient

log = structlog.get_logger(__name__)

_COPY_RENEWALS = (
    "COPY recon_renewals (run_id, tld, domain, cur_exp_date, previous_expiry, new_expiry, years,"
    " server_tx_id, client_tx_id, created_at) FROM STDIN"
)


@dataclass(frozen=True)
class LedgerRelation:
    """A table of registry renewals (columns tld, domain, cur_exp_date, previous_expiry,
    new_expiry, years, server_tx_id, client_tx_id, created_at) and its scope: this run's copy
    (`per_run`, filtered on run_id) or the registry's own rows (filtered on created_at)."""

    table: str
    per_run: bool

    def relation(self) -> sql.Composable:
        """`(SELECT * FROM <table> WHERE ...)`, composed with psycopg (the name is quoted)."""
        scope = "run_id = %(run_id)s" if self.per_run else "created_at >= %(ledger_since)s"
        return sql.SQL("(SELECT * FROM {} WHERE {})").format(
            sql.Identifier(self.table), sql.SQL(scope)
        )


SCRATCH = LedgerRelation("recon_renewals", per_run=True)


class RegistryLedgerSource(Protocol):
    async def fill(
        self, conn: AsyncConnection[Any], run_id: int, since: dt.datetime
    ) -> LedgerRelation:
        """Make the renewals performed since `since` readable; say where they are."""
        ...


class ApiLedger:
    """Any registry's ledger API, paged by id, copied into recon_renewals with COPY."""

    def __init__(self, registry: RegistryClient, tlds: Iterable[str], page: int = 5000) -> None:
        self.registry = registry
        self.tlds = sorted(tlds)
        self.page = page

    async def fill(
        self, conn: AsyncConnection[Any], run_id: int, since: dt.datetime
    ) -> LedgerRelation:
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
                                run_id,
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
        log.info("reconcile.registry.loaded", renewals=total)
        return SCRATCH


async def load_workflow_states(
    conn: AsyncConnection[Any], run_id: int, client: Client, task_queue: str, since: dt.datetime
) -> int:
    """Every RenewDomain run on the queue started since `since`, listed from visibility."""
    query = (
        f'WorkflowType = "{WORKFLOW_TYPE}" AND TaskQueue = "{task_queue}"'
        f' AND StartTime >= "{since.astimezone(dt.UTC).isoformat()}"'
    )
    latest: dict[str, tuple[Any, ...]] = {}  # a reset or relaunch adds runs: keep the newest
    async for wf in client.list_workflows(query, page_size=1000):
        if wf.status is None:
            continue
        row = (run_id, wf.id, wf.run_id, wf.status.name, wf.start_time, wf.close_time)
        if wf.id not in latest or wf.start_time > latest[wf.id][4]:
            latest[wf.id] = row
    async with conn.cursor().copy(
        "COPY recon_wf_states (run_id, workflow_id, wf_run_id, status, start_time, close_time)"
        " FROM STDIN"
    ) as copy:
        for row in latest.values():
            await copy.write_row(row)
    log.info("reconcile.temporal.listed", workflows=len(latest))
    return len(latest)


async def clear_scratch(conn: AsyncConnection[Any], run_id: int) -> None:
    await conn.execute("DELETE FROM recon_renewals WHERE run_id = %s", (run_id,))
    await conn.execute("DELETE FROM recon_wf_states WHERE run_id = %s", (run_id,))
