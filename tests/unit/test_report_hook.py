"""The scheduler hands each nightly run (and only a run it made) to the report hook."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.model import RunSummary, Window
from reconciler.schedule import ScheduleConfig, nightly
from reconciler.store import RunAlreadyDone


class FakeReconciler:
    """Records the windows it was asked to run; raises RunAlreadyDone when told to."""

    def __init__(self, done: bool = False) -> None:
        self.done = done
        self.runs: list[tuple[Window, str]] = []

    async def run(self, window: Window, kind: str, **_: Any) -> RunSummary:
        if self.done:
            raise RunAlreadyDone(kind, window)
        self.runs.append((window, kind))
        return RunSummary(len(self.runs), kind, window, 0, {}, 0, 0.0)

    async def refresh_gauges(self) -> None:
        pass


async def test_nightly_run_calls_the_report_hook() -> None:
    """A nightly run made here is reported; one another replica made is not."""
    reported: list[RunSummary] = []

    async def after(summary: RunSummary) -> None:
        reported.append(summary)

    rec = FakeReconciler()
    summary = await nightly(rec, ScheduleConfig(), after)  # type: ignore[arg-type]
    assert summary is not None and reported == [summary]
    window, kind = rec.runs[0]
    assert kind == "nightly" and window.until - window.since == dt.timedelta(days=1)
    assert await nightly(FakeReconciler(done=True), ScheduleConfig(), after) is None  # type: ignore[arg-type]
    assert reported == [summary]
