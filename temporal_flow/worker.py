"""Workers: the renewal queue (workflows, billing, database) and one queue per registry.

Registry workers carry the provider's limits: `max_task_queue_activities_per_second` is
enforced by the Temporal server across every worker of the queue, so adding workers never
pushes a provider past its rate; `max_concurrent_activities` bounds calls in flight per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from renewals.queues import registry_queue
from renewals.settings import Settings
from temporal_flow.activities import RenewalActivities
from temporal_flow.interceptors import all_interceptors, registry_interceptors
from temporal_flow.workflows import RenewDomain

log = structlog.get_logger(__name__)

MAIN = "main"


@dataclass(frozen=True)
class WorkerOptions:
    queues: tuple[str, ...] = ()  # "main" and/or "registry-<tld>"; empty = all
    graceful_shutdown_s: float = 20.0
    interceptors: bool = True
    max_concurrent_activities: int = 100
    only_interceptors: frozenset[str] | None = None  # a subset of INTERCEPTORS (benchmarks)


def queue_names(settings: Settings) -> list[str]:
    return [MAIN, *(registry_queue(t, settings.task_queue) for t in sorted(settings.tlds))]


def build_workers(
    client: Client,
    settings: Settings,
    pool: AsyncConnectionPool,
    activities: RenewalActivities,
    options: WorkerOptions,
) -> list[Worker]:
    wanted = set(options.queues) or set(queue_names(settings))
    unknown = wanted - set(queue_names(settings))
    if unknown:
        raise ValueError(f"queues: unknown {', '.join(sorted(unknown))}")
    grace = timedelta(seconds=options.graceful_shutdown_s)
    workers = []
    if MAIN in wanted:
        main_interceptors: Sequence[Interceptor] = (
            all_interceptors(pool, options.only_interceptors) if options.interceptors else []
        )
        workers.append(
            Worker(
                client,
                task_queue=settings.task_queue,
                workflows=[RenewDomain],
                activities=activities.all(),
                interceptors=main_interceptors,
                max_cached_workflows=settings.workflow_cache,
                max_concurrent_activities=options.max_concurrent_activities,
                graceful_shutdown_timeout=grace,
            )
        )
    for tld in sorted(settings.tlds):
        queue = registry_queue(tld, settings.task_queue)
        if queue not in wanted:
            continue
        on_registry: Sequence[Interceptor] = (
            registry_interceptors(pool, options.only_interceptors) if options.interceptors else []
        )
        workers.append(
            Worker(
                client,
                task_queue=queue,
                activities=[
                    activities.registry_status,
                    activities.registry_price,
                    activities.registry_renew,
                    activities.registry_find_renewal,
                ],
                interceptors=on_registry,
                max_task_queue_activities_per_second=settings.rate_limit(tld),
                max_concurrent_activities=settings.concurrency(tld),
                graceful_shutdown_timeout=grace,
            )
        )
    return workers


async def open_workflows(client: Client, task_queue: str) -> int:
    count = await client.count_workflows(
        f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Running"'
    )
    return count.count


async def run_workers(
    client: Client,
    settings: Settings,
    pool: AsyncConnectionPool,
    activities: RenewalActivities,
    options: WorkerOptions,
    stop: asyncio.Event,
    *,
    drain: bool = False,
    drain_poll_s: float = 1.0,
) -> None:
    """Run until `stop` is set (graceful: running activities get `graceful_shutdown_s`),
    or with `drain` until no renewal workflow is open on the task queue."""
    workers = build_workers(client, settings, pool, activities, options)
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        log.info("worker.started", queues=[w.task_queue for w in workers], drain=drain)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=drain_poll_s)
            if drain and await open_workflows(client, settings.task_queue) == 0:
                log.info("worker.drained", task_queue=settings.task_queue)
                break
        log.info("worker.stopping", graceful_shutdown_s=options.graceful_shutdown_s)
    log.info("worker.stopped")
