"""Detached service processes: pid files, ownership checks through /proc, start, health waits, stop.

A service runs in its own session (`start_new_session=True`), so its pid is also its process
group id and stopping it signals the whole group. A pid file is trusted only when the process
it names is alive (not a zombie) and its command line carries the service's markers: a pid
recycled by an unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import httpx
import structlog

from ops.postgres import port_open as port_open
from renewals.errors import DualrunError

log = structlog.get_logger(__name__)

Mode = Literal["embedded", "external", "off"]  # off: an optional part not run (`note` says why)
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_ours(pid: int, markers: Sequence[str]) -> bool:
    """Alive, and every marker appears as an argument (or inside one) of its command line."""
    if not alive(pid):
        return False
    args = cmdline(pid)
    return bool(args) and all(any(marker in arg for arg in args) for marker in markers)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def remove_pid_file(path: Path) -> None:
    path.unlink(missing_ok=True)


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` detached (own session, stdin closed, output appended to `log_file`)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(
            f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode()
        )
        log.flush()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{process.pid}\n")
    tmp.replace(pid_file)
    return process


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(pgid: int, timeout: float = 15.0, kill_after: float = 5.0) -> bool:
    """SIGTERM the process group, wait up to `timeout`, then SIGKILL. True when nothing is left."""
    if not group_members(pgid):
        return True
    _signal_group(pgid, signal.SIGTERM)
    if wait_until(lambda: not group_members(pgid), timeout):
        return True
    _signal_group(pgid, signal.SIGKILL)
    return wait_until(lambda: not group_members(pgid), kill_after)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    give_up: Callable[[], bool] | None = None,
) -> bool:
    """Poll `predicate` until true (True) or `timeout` passes or `give_up()` says so (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline or (give_up is not None and give_up()):
            return predicate()
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """GET `url` answers 2xx."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.is_success


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    mode: Mode
    address: str
    healthy: bool
    pid: int | None = None
    ui_url: str | None = None
    log_file: str | None = None
    login: str | None = None  # of the Web UI, when it has one to give (never a secret)
    note: str | None = None

    @property
    def ok(self) -> bool:
        """Healthy, or an optional part deliberately not run."""
        return self.healthy or self.mode == "off"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class StackError(DualrunError):
    """A service of the stack could not be started or stopped; carries the tail of its log."""

    def __init__(self, service: str, problem: str, log_tail: str = "") -> None:
        message = f"{service}: {problem}"
        if log_tail:
            message += f"\n--- last lines of its log ---\n{log_tail}"
        super().__init__(message)
        self.service = service
        self.problem = problem
        self.log_tail = log_tail


class DetachedService:
    """A detached process: pid file `state_dir/run/NAME.pid`, log `state_dir/logs/NAME.log`."""

    def __init__(
        self,
        name: str,
        state_dir: Path,
        argv: Callable[[], list[str]],
        markers: Sequence[str],
        ports: Sequence[int],
        health: Callable[[], bool],
        address: str,
        ui_url: str | None = None,
        data_dirs: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.env = env
        self.data_dirs = list(data_dirs)
        self.argv = argv
        self.markers = list(markers)
        self.ports = list(ports)
        self.health = health
        self.address = address
        self.ui_url = ui_url
        self.pid_file = state_dir / "run" / f"{name}.pid"
        self.log_file = state_dir / "logs" / f"{name}.log"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and is_ours(pid, self.markers) else None

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            name=self.name,
            mode="embedded",
            address=self.address,
            healthy=pid is not None and self.health(),
            pid=pid,
            ui_url=self.ui_url,
            log_file=str(self.log_file),
        )

    def _forget_stale(self) -> None:
        if self.pid_file.exists() and self.pid() is None:
            stale = read_pid(self.pid_file)
            log.warning("stack.service.stale_pid", service=self.name, pid=stale)
            remove_pid_file(self.pid_file)

    def start(self) -> str:
        """Start unless healthy; returns "running" (left alone) or "started"."""
        self._forget_stale()
        pid = self.pid()
        if pid is not None:
            if wait_until(self.health, START_TIMEOUT_S / 2):
                return "running"
            log.warning("stack.service.unhealthy_restart", service=self.name, pid=pid)
            self.stop()
        for port in self.ports:
            if port_open(HOST, port):
                raise StackError(
                    self.name, f"port {port} is in use by a process this stack did not start"
                )
        for directory in self.data_dirs:
            directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        process = spawn(self.argv(), log_file=self.log_file, pid_file=self.pid_file, env=self.env)
        if not wait_until(self.health, START_TIMEOUT_S, give_up=lambda: process.poll() is not None):
            code = process.poll()
            stop_group(process.pid)
            remove_pid_file(self.pid_file)
            problem = (
                f"exited with status {code} while starting"
                if code is not None
                else f"not healthy after {START_TIMEOUT_S:.0f} s"
            )
            raise StackError(self.name, problem, log_tail(self.log_file))
        log.info(
            "stack.service.started",
            service=self.name,
            address=self.address,
            pid=process.pid,
            seconds=round(time.monotonic() - started, 2),
        )
        return "started"

    def stop(self) -> bool:
        """Stop the process group; True when something was running."""
        self._forget_stale()
        pid = self.pid()
        if pid is None:
            return False
        if not stop_group(pid):
            raise StackError(self.name, f"process group {pid} survived SIGKILL")
        remove_pid_file(self.pid_file)
        log.info("stack.service.stopped", service=self.name, pid=pid)
        return True
