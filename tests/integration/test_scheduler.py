"""`dualrun scheduler` as real processes: replicas run each scheduled job once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Harness, worker_env

pytestmark = pytest.mark.integration


async def test_two_schedulers_run_each_job_once(h: Harness, tmp_path: Path) -> None:
    """Two replicas started together: each nightly catch-up day and sweep tick ran once."""
    reports = tmp_path / "reports"
    env = {
        "PATH": os.environ.get("PATH", ""),
        **worker_env(h.settings),
        "DUALRUN_REPORT_DIR": str(reports),
    }
    cmd = [
        sys.executable,
        "-m",
        "dualrun",
        "scheduler",
        "--sweep-every",
        "2",
        "--catch-up-days",
        "3",
    ]
    procs = [
        subprocess.Popen(  # noqa: ASYNC220
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"scheduler{i}.log").open("wb"),
            start_new_session=True,
        )
        for i in range(2)
    ]
    try:

        async def ticks() -> bool:
            rows = await h.query(
                "SELECT count(*) AS n FROM reconciliation_runs WHERE kind = 'sweep'"
            )
            return rows[0]["n"] >= 4

        await h.wait_for(ticks, within=60)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
    logs = "\n".join((tmp_path / f"scheduler{i}.log").read_text() for i in range(2))
    assert codes == [0, 0], logs[-3000:]
    runs = await h.query(
        "SELECT run_id, kind, window_start, window_end, status FROM reconciliation_runs"
    )
    nightly = [r for r in runs if r["kind"] == "nightly"]
    sweeps = [r for r in runs if r["kind"] == "sweep"]
    assert len(nightly) == 3 and len({r["window_start"] for r in nightly}) == 3
    assert len({(r["window_start"], r["window_end"]) for r in sweeps}) == len(sweeps)
    assert all(r["status"] == "ok" for r in runs)
    assert "schedule.skipped" in logs  # the other replica found the run already done
    written = {p.name for p in reports.glob("run-*.html")}
    assert written == {f"run-{r['run_id']}.html" for r in nightly}  # a report per nightly run
    await asyncio.sleep(0)
