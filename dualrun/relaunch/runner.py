"""Run a relaunch job: each pending item relaunched through its engine, paced, resumable.

Per item, through the Engine port: the plan (Temporal: reset to before the last failed activity,
or a fresh run when the history is gone; legacy: a requeue), prepared (the row put back to
`todo` when the plan says so, event `relaunched`), a slot from the pacer, the send with the
request id `relaunch:{job}:{operation}`, then the item done. An item interrupted after it was
prepared is recognised on resume by what its engine says was sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from dualrun.relaunch import items, jobs
from dualrun.relaunch.items import JobItem
from dualrun.relaunch.model import Selection, Summary
from dualrun.relaunch.pacing import Pacer, Reporter, reporter
from renewals.engine import Engines, RelaunchItem, RelaunchSkipped
from renewals.model import Operation

log = structlog.get_logger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Relauncher:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        engines: Engines,
        *,
        rate: float,
        concurrency: int = 8,
        progress_every: int = 0,
    ) -> None:
        self.pool = pool
        self.engines = engines
        self.pacer = Pacer(rate)
        self.concurrency = concurrency
        self.progress_every = progress_every
        self.sent: list[float] = []

    # -- dry run -----------------------------------------------------------------------------
    async def dry_run(self, selection: Selection, job_id: int | None = None) -> Summary:
        """What would be relaunched, and how: reads only (no job, no row, no engine change)."""
        started = time.monotonic()
        if job_id is None:
            found = [
                (Operation.from_row(r), r["skip"])
                for r in await jobs.select(self.pool, selection, _now())
            ]
        else:
            found = [(i.operation, None) for i in await jobs.pending(self.pool, job_id)]
        limit = asyncio.Semaphore(self.concurrency)

        async def describe(operation: Operation, skip: str | None) -> dict[str, Any]:
            async with limit:
                return await self._describe(operation, skip)

        listed = list(await asyncio.gather(*(describe(op, skip) for op, skip in found)))
        summary = Summary(job_id, dry_run=True, selected=len(listed), items=listed)
        for item in listed:
            summary.by_action[item["action"]] = summary.by_action.get(item["action"], 0) + 1
        summary.skipped = summary.by_action.get("skip", 0)
        summary.elapsed_s = time.monotonic() - started
        return summary

    async def _describe(self, operation: Operation, skip: str | None) -> dict[str, Any]:
        out = {
            "operation_id": operation.operation_id,
            "domain": operation.domain,
            "engine": operation.engine.value,
            "status": operation.status.value,
        }
        if skip:
            return {**out, "action": "skip", "reason": skip}
        plan = await self.engines[operation.engine].relaunch_plan(RelaunchItem(operation))
        extra = {k: v for k, v in plan.detail.items() if v is not None and k != "action"}
        if "from_run_id" in extra:  # the run a reset starts from
            extra["run_id"] = extra.pop("from_run_id")
        if operation.workflow_id:
            extra["workflow_id"] = operation.workflow_id
        if plan.reason:
            extra["reason"] = plan.reason
        return {**out, "action": plan.action, **extra}

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
                await self._work(todo, progress)
            finally:
                progress.close()
            after = await jobs.tally(self.pool, job_id)
        summary = self._summary(job_id, resumed, after, time.monotonic() - started)
        done = {k: v for k, v in summary.as_dict().items() if k not in ("items", "dry_run")}
        log.info("relaunch.job.finished" if not summary.pending else "relaunch.job.paused", **done)
        return summary

    async def _work(self, todo: Sequence[JobItem], rep: Reporter) -> None:
        queue: asyncio.Queue[JobItem] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                rep.advance(await self._one(item))

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(todo)))))

    async def _one(self, item: JobItem) -> str:
        """Relaunch one item; its outcome (done, skipped, failed). One item's failure never
        stops the job; a row reopened for a relaunch that was not sent gets its status back."""
        engine = self.engines[item.operation.engine]
        op = item.operation_id
        reopened = False  # the row is `todo` for this relaunch, and nothing was sent yet
        try:
            if item.prepared_at is not None:  # an interrupted job: was it sent?
                run = await engine.relaunch_sent(item.relaunch)
                if run is not None:
                    await items.done(
                        self.pool, item, run_id=run, relaunched_at=None, reopened=bool(run)
                    )
                    log.info("relaunch.item.already_sent", operation_id=op, run_id=run)
                    return "done"
            plan = await engine.relaunch_plan(item.relaunch)
            if item.prepared_at is not None:
                reopened = plan.reopen
            if plan.action == "skip":
                reason = plan.reason or ""
                await items.finish_item(self.pool, item, "skipped", reason, restore=reopened)
                log.info("relaunch.item.skipped", operation_id=op, reason=plan.reason)
                return "skipped"
            if item.prepared_at is None:
                why = await items.prepare(self.pool, item, plan)
                if why is not None:
                    await items.finish_item(self.pool, item, "skipped", why)
                    return "skipped"
                reopened = plan.reopen
            at = await self._slot()
            try:
                run_id = await engine.relaunch(item.relaunch, plan, f"relaunch:{item.job_id}:{op}")
            except RelaunchSkipped as exc:
                await items.finish_item(self.pool, item, "skipped", str(exc), restore=reopened)
                log.info("relaunch.item.skipped", operation_id=op, reason=str(exc))
                return "skipped"
            reopened = False  # sent: from here the row belongs to the new run
            await items.done(self.pool, item, run_id=run_id, relaunched_at=at, reopened=plan.reopen)
            log.debug("relaunch.item.done", operation_id=op, action=plan.action, run_id=run_id)
            return "done"
        except Exception as exc:  # the engine raises from its send only when nothing was sent
            log.warning("relaunch.item.failed", operation_id=op, error=repr(exc))
            await items.finish_item(self.pool, item, "failed", repr(exc), restore=reopened)
            return "failed"

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
