"""The demo's own engine processes: Temporal workers and legacy robots, as real `dualrun` runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


@dataclass
class EngineProcesses:
    log_dir: Path
    robots: int
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    legacy: subprocess.Popen[bytes] | None = None
    legacy_args: tuple[str, ...] = ()  # more `legacy-engine` options (the scale bench's pacing)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"demo-{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dualrun", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "DUALRUN_LOG_FORMAT": "json"},
        )
        log.info("demo.process.started", name=name, pid=proc.pid)
        return proc

    def start_worker(self) -> None:
        n = len(self.workers)
        self.workers.append(self._spawn(f"worker{n}", "worker", "--graceful-timeout", "5"))

    def start_legacy(self) -> None:
        self.legacy = self._spawn(
            "legacy",
            "legacy-engine",
            "--robots", str(self.robots),
            "--poll-interval", "1",
            "--retry-delay", "2",
            "--lease", "20",
            *self.legacy_args,
        )  # fmt: skip

    def kill_worker(self) -> int:
        """SIGKILL the first live worker (no goodbye: its activities time out and retry)."""
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                log.warning("demo.worker.killed", pid=proc.pid)
                return proc.pid
        raise RuntimeError("no live worker to kill")

    def stop(self) -> None:
        procs = [p for p in [*self.workers, self.legacy] if p is not None and p.poll() is None]
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.info("demo.processes.stopped", count=len(procs))
