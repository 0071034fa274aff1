"""Pacing (relaunches per second) and progress (a rich bar on a terminal, else log lines)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Protocol

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = structlog.get_logger(__name__)


class Pacer:
    """At most `rate` starts per second, evenly spaced: each caller books the next free slot
    (booking is synchronous, so concurrent callers never share one) then sleeps until it.
    Slots missed while idle are not saved up: no burst after a pause."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self._next: float | None = None

    def book(self) -> float:
        """Seconds to wait for the next slot (and take it)."""
        now = self.clock()
        slot = now if self._next is None or self._next < now else self._next
        self._next = slot + self.interval
        return slot - now

    async def wait(self) -> None:
        delay = self.book()
        if delay > 0:
            await asyncio.sleep(delay)


class Reporter(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, outcome: str) -> None: ...
    def close(self) -> None: ...


class LogReporter:
    """A `relaunch.progress` log line every `every` items and at the end."""

    def __init__(self, job_id: int | None, every: int = 0) -> None:
        self.job_id = job_id
        self.every = every
        self.total = self.done = 0
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()

    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self.every = self.every or max(1, min(100, total // 10))
        log.info("relaunch.progress", job_id=self.job_id, done=done, total=total)

    def advance(self, outcome: str) -> None:
        self.done += 1
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self.done % self.every == 0 or self.done == self.total:
            log.info(
                "relaunch.progress",
                job_id=self.job_id,
                done=self.done,
                total=self.total,
                elapsed_s=round(time.monotonic() - self.started, 1),
                outcomes=dict(sorted(self.counts.items())),
            )

    def close(self) -> None:
        pass


class RichReporter:
    """A progress bar on stderr (a terminal)."""

    def __init__(self, job_id: int | None) -> None:
        self.progress = Progress(
            TextColumn("relaunch" + (f" job {job_id}" if job_id else "")),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("relaunch", total=0, counts="")
        self.counts: dict[str, int] = {}

    def start(self, total: int, done: int) -> None:
        self.progress.start()
        self.progress.update(self.task, total=total, completed=done)

    def advance(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        text = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        self.progress.update(self.task, advance=1, counts=text)

    def close(self) -> None:
        self.progress.stop()


def reporter(job_id: int | None, every: int = 0) -> Reporter:
    """A rich bar when stderr is a terminal, else a log line every `every` items."""
    return RichReporter(job_id) if sys.stderr.isatty() else LogReporter(job_id, every)
