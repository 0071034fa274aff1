"""Run a relaunch job: each pending item reset, started afresh or requeued, paced, resumable.

Per Temporal item: plan (describe + history: reset point, or fresh when the history is gone),
put the row back to `todo` (event `relaunched`), wait for a slot, reset with the request id
`relaunch:{job}:{operation}` (or start under the same key), then mark the item done and the row
`doing` with the new run. An item interrupted after its row went back to `todo` is recognised on
resume by the workflow's current run: a run other than the one reset means the reset was sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from dualrun.relaunch import items, jobs
from dualrun.relaunch.model import Selection, Summary
from dualrun.relaunch.pacing import Pacer, Reporter, reporter
from legacy_adapter.adapter import LegacyAdapter
from legacy_adapter.errors import RequeueRefused
from renewals.operations import OperationNotFound
from renewals.settings import Settings
from temporal_flow import relaunch as temporal

log = structlog.get_logger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Relauncher:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        settings: Settings,
        connect: Callable[[], Awaitable[Client]],
        *,
        rate: float,
        concurrency: int = 8,
        progress_every: int = 0,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self._connect = connect
        self._client: Client | None = None
        self._client_lock = asyncio.Lock()
        self.pacer = Pacer(rate)
        self.concurrency = concurrency
        self.progress_every = progress_every
        self.adapter = LegacyAdapter(pool)
        self.sent: list[float] = []

    async def client(self) -> Client:
        """Temporal, connected on first use (a legacy-only selection never needs it)."""
        async with self._client_lock:
            if self._client is None:
                self._client = await self._connect()
            return self._client

    # -- dry run -----------------------------------------------------------------------------
    async def dry_run(self, selection: Selection, job_id: int | None = None) -> Summary:
        """What would be relaunched, and how: reads only (no job, no row, no Temporal change)."""
        started = time.monotonic()
        if job_id is None:
            rows = await jobs.select(self.pool, selection, _now())
        else:
            rows = [{**r, "skip": None} for r in await jobs.pending(self.pool, job_id)]
        limit = asyncio.Semaphore(self.concurrency)

        async def describe(row: dict[str, Any]) -> dict[str, Any]:
            async with limit:
                return await self._describe(row)

        listed = list(await asyncio.gather(*(describe(r) for r in rows)))
        summary = Summary(job_id, dry_run=True, selected=len(listed), items=listed)
        for item in listed:
            summary.by_action[item["action"]] = summary.by_action.get(item["action"], 0) + 1
        summary.skipped = summary.by_action.get("skip", 0)
        summary.elapsed_s = time.monotonic() - started
        return summary

    async def _describe(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: row[k] for k in ("operation_id", "domain", "engine")}
        out["status"] = row.get("row_status", row["status"])
        if row.get("skip"):
            return {**out, "action": "skip", "reason": row["skip"]}
        if row["engine"] == "legacy":
            return {**out, "action": "requeue"}
        wid = row["workflow_id"] or row["idempotency_key"]
        plan = await temporal.plan(await self.client(), wid)
        return {**out, **{k: v for k, v in plan.as_dict().items() if v is not None}}

    # -- the job -----------------------------------------------------------------------------
    async def run(self, selection: Selection, job_id: int | None = None) -> Summary:
        """Relaunch the selection's job (created, or resumed when unfinished), or job `job_id`."""
        started = time.monotonic()
        async with jobs.exclusive(self.pool, selection):
            if job_id is None:
                job_id, resumed = await jobs.open_job(
                    self.pool, selection, _now(), 1.0 / self.pacer.interval
                )
            else:
                await jobs.mark_resumed(self.pool, job_id)
                resumed = True
            todo = await jobs.pending(self.pool, job_id)
            before = await jobs.tally(self.pool, job_id)
            total = sum(before["counts"].values())
            log.info(
                "relaunch.job.resumed" if resumed else "relaunch.job.started",
                job_id=job_id,
                selection=selection.as_dict(),
                total=total,
                pending=len(todo),
            )
            progress = reporter(job_id, self.progress_every)
            progress.start(total, total - len(todo))
            try:
                await self._work(job_id, todo, progress)
            finally:
                progress.close()
            after = await jobs.tally(self.pool, job_id)
        summary = self._summary(job_id, resumed, after, time.monotonic() - started)
        done = {k: v for k, v in summary.as_dict().items() if k not in ("items", "dry_run")}
        log.info("relaunch.job.finished" if not summary.pending else "relaunch.job.paused", **done)
        return summary

    async def _work(self, job_id: int, todo: Sequence[dict[str, Any]], rep: Reporter) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                try:
                    outcome = await self._one(job_id, item)
                except Exception as exc:  # one item's failure never stops the job
                    log.warning(
                        "relaunch.item.failed", operation_id=item["operation_id"], error=repr(exc)
                    )
                    # a row this process put back to todo, with nothing sent, gets its status back
                    restore = bool(item.get("prepared_here")) and not item.get("sent")
                    await items.finish_item(
                        self.pool, job_id, item, "failed", repr(exc), restore=restore
                    )
                    outcome = "failed"
                rep.advance(outcome)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(todo)))))

    async def _one(self, job_id: int, item: dict[str, Any]) -> str:
        if item["engine"] == "legacy":
            return await self._legacy(job_id, item)
        return await self._temporal(job_id, item)

    async def _temporal(self, job_id: int, item: dict[str, Any]) -> str:
        client, op, wid = await self.client(), item["operation_id"], item["workflow_id"]
        if item["prepared_at"] is not None:  # interrupted after the row went back to todo
            current = await temporal.current_run(client, wid)
            if current is not None and current != item["from_run_id"]:
                await items.done(self.pool, job_id, item, run_id=current, relaunched_at=None)
                log.info("relaunch.item.already_sent", operation_id=op, run_id=current)
                return "done"
        plan = await temporal.plan(client, wid)
        prepared = item["prepared_at"] is not None
        if plan.action == "skip":
            reason = plan.reason or ""
            await items.finish_item(self.pool, job_id, item, "skipped", reason, restore=prepared)
            log.info("relaunch.item.skipped", operation_id=op, reason=plan.reason)
            return "skipped"
        detail = {
            "action": plan.action,
            "from_run_id": plan.run_id,
            "reset_event_id": plan.reset_event_id,
            "activity": plan.activity,
        }
        if not prepared:
            why = await items.prepare(self.pool, job_id, item, detail)
            if why is not None:
                await items.finish_item(self.pool, job_id, item, "skipped", why)
                return "skipped"
            item["prepared_here"] = True  # a failure before the send puts the row back
        at = await self._slot()
        item["sent"] = True  # from here the reset or start may have reached Temporal
        try:
            run_id = await self._send(client, job_id, item, plan)
        except temporal.AlreadyStarted as exc:  # reported; the row gets its status back
            await items.finish_item(self.pool, job_id, item, "failed", str(exc), restore=True)
            log.warning("relaunch.item.exists", operation_id=op, run_id=exc.run_id)
            return "failed"
        except Exception as exc:  # did it reach Temporal? The current run says.
            current = await temporal.current_run(client, wid)
            if current is None or current == plan.run_id:
                await items.finish_item(self.pool, job_id, item, "failed", repr(exc), restore=True)
                log.warning("relaunch.item.failed", operation_id=op, error=repr(exc))
                return "failed"
            run_id = current
        await items.done(self.pool, job_id, item, run_id=run_id, relaunched_at=at, doing=True)
        log.debug("relaunch.item.done", operation_id=op, action=plan.action, run_id=run_id)
        return "done"

    async def _send(
        self, client: Client, job_id: int, item: dict[str, Any], plan: temporal.Plan
    ) -> str:
        """Reset (request id `relaunch:{job}:{operation}`) or start afresh; the new run id."""
        if plan.action == "reset":
            request_id = f"relaunch:{job_id}:{item['operation_id']}"
            return await temporal.reset(client, plan, request_id, f"dualrun relaunch {job_id}")
        started = await temporal.start_fresh(client, self.settings, item)
        if started.existing:  # the key already has a run (a race with another starter)
            raise temporal.AlreadyStarted(plan.workflow_id, started.run_id)
        return started.run_id or ""

    async def _legacy(self, job_id: int, item: dict[str, Any]) -> str:
        op = item["operation_id"]
        event = {"action": "requeue"}
        if item["prepared_at"] is not None and await items.requeued_since(
            self.pool, op, item["prepared_at"]
        ):
            await items.done(self.pool, job_id, item, run_id=None, relaunched_at=None, event=event)
            return "done"
        if item["prepared_at"] is None:
            await items.mark_prepared(self.pool, job_id, op, event)
        at = await self._slot()
        try:
            await self.adapter.requeue(op)
        except (RequeueRefused, OperationNotFound) as exc:
            await items.finish_item(self.pool, job_id, item, "skipped", str(exc))
            log.info("relaunch.item.skipped", operation_id=op, reason=str(exc))
            return "skipped"
        await items.done(self.pool, job_id, item, run_id=None, relaunched_at=at, event=event)
        return "done"

    async def _slot(self) -> dt.datetime:
        """Wait for the pacer; the time the relaunch is sent."""
        await self.pacer.wait()
        self.sent.append(time.monotonic())
        return _now()

    def _summary(self, job_id: int, resumed: bool, tally: dict[str, Any], took: float) -> Summary:
        counts = tally["counts"]
        span = self.sent[-1] - self.sent[0] if len(self.sent) > 1 else 0.0
        return Summary(
            job_id,
            resumed=resumed,
            selected=sum(counts.values()),
            relaunched=counts["done"],
            skipped=counts["skipped"],
            failed=counts["failed"],
            pending=counts["pending"],
            by_action=tally["actions"],
            elapsed_s=took,
            rate_achieved=(len(self.sent) - 1) / span if span > 0 else None,
            items=[dict(p) for p in tally["problems"]],
        )
