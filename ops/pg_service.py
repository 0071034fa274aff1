"""The stack's embedded PostgreSQL: where its data lives, start, stop and status.

Its data directory is `state_dir/postgres/data` (log `state_dir/postgres/postgres.log`) unless
the server's OS user cannot reach it. Run as root, PostgreSQL runs as an unprivileged user
(ops.postgres) who must traverse every parent of its data directory, and a state dir under a
private home (`/root`, mode 0700, the usual home in a container) is out of its reach. Then the
data lives in a directory of its own, `/var/tmp/dualrun-postgres-XXXX` (else under the temp
dir), owned by that user; its path is recorded in `state_dir/postgres/location` and `stack
down` removes it with the record. The user's own directories are never chmodded.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import structlog

from ops import processes, registry_sim
from ops.postgres import EmbeddedPostgres, blocking_parent, server_user
from ops.processes import HOST, START_TIMEOUT_S, ServiceStatus, StackError
from renewals.db.migrate import migrate_core
from renewals.settings import Settings

log = structlog.get_logger(__name__)

RELOCATED_PREFIX = "dualrun-postgres-"
LOCATION_FILE = "location"


def can_connect(dsn: str, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _temp_root() -> Path:
    """A world-traversable place for data of our own: /var/tmp (kept across reboots), else
    the temp dir."""
    # mkdtemp below makes a fresh 0700 directory there: no name is guessable or reused
    for candidate in (Path("/var/tmp"), Path(tempfile.gettempdir())):  # noqa: S108
        if candidate.is_dir() and candidate.stat().st_mode & 0o001:
            return candidate
    raise StackError("postgres", "neither /var/tmp nor the temp dir can be traversed by others")


def _recorded(record: Path) -> Path | None:
    """The relocated data's base directory named in the record, when it looks like ours."""
    try:
        text = record.read_text().strip()
    except OSError:
        return None
    path = Path(text)
    return path if path.is_absolute() and path.name.startswith(RELOCATED_PREFIX) else None


class PostgresService:
    """The embedded server (ops.postgres) on 127.0.0.1:pg_port, its data where its user can
    reach it."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.port = settings.pg_port
        self.home = settings.state_dir / "postgres"
        self.record = self.home / LOCATION_FILE
        self.address = f"{HOST}:{settings.pg_port}"
        self._use(_recorded(self.record))

    def _use(self, relocated: Path | None) -> None:
        self.relocated = relocated
        self.server = EmbeddedPostgres((relocated or self.home) / "data", self.port)
        self.markers = ["postgres", str(self.server.pgdata)]

    def pid(self) -> int | None:
        """The postmaster's pid, only when postmaster.pid names a live server of this data dir."""
        pid = self.server.pid()
        return pid if pid is not None and processes.is_ours(pid, self.markers) else None

    def healthy(self) -> bool:
        return self.pid() is not None and can_connect(self.server.dsn)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        healthy = pid is not None and can_connect(self.server.dsn)
        note = None
        if self.relocated is not None:
            note = f"data in {self.relocated} (out of the state dir; removed by stack down)"
        return ServiceStatus(
            "postgres",
            "embedded",
            self.address,
            healthy,
            pid,
            log_file=str(self.server.log_file),
            note=note,
        )

    def _error(self, problem: str) -> StackError:
        return StackError("postgres", problem, processes.log_tail(self.server.log_file))

    def _forget_stale(self) -> None:
        pid_file = self.server.pgdata / "postmaster.pid"
        if pid_file.exists() and self.pid() is None:
            log.warning("stack.service.stale_pid", service="postgres", pid=self.server.pid())
            pid_file.unlink(missing_ok=True)

    def _place(self) -> None:
        """Choose where the data lives before a start: as recorded, else in the state dir when
        the server's user can reach it, else in a directory of its own (recorded)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.relocated is not None:
            if self.relocated.is_dir():
                return
            log.warning("stack.postgres.relocated_missing", data_dir=str(self.relocated))
            self.record.unlink(missing_ok=True)  # cleaned away (a reboot): start afresh
            self._use(None)
        user = server_user()
        if user is None:
            return
        blocked = blocking_parent(self.home, user)
        if blocked is None:
            os.chmod(self.home, 0o755)  # noqa: S103 - made by the stack; its server user traverses it
            return
        if self.server.initialised():
            raise self._error(
                f"{blocked} cannot be traversed by the OS user {user!r} the server runs as, and "
                f"{self.server.pgdata} already holds data: move it or choose another "
                "DUALRUN_STATE_DIR"
            )
        base = Path(tempfile.mkdtemp(prefix=RELOCATED_PREFIX, dir=_temp_root()))
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(f"{base}\n")
        tmp.replace(self.record)
        self._use(base)
        log.info(
            "stack.postgres.relocated",
            data_dir=str(self.server.pgdata),
            because=f"{blocked} cannot be traversed by {user!r}",
        )

    def _check_reachable(self) -> None:
        user = server_user()
        blocked = None if user is None else blocking_parent(self.server.pgdata, user)
        if blocked is not None:
            raise self._error(
                f"{blocked} cannot be traversed by the OS user {user!r} the server runs as "
                "(PostgreSQL refuses root)"
            )

    def start(self) -> str:
        """Start unless running, wait until it accepts connections, apply the migrations."""
        self._forget_stale()
        started = time.monotonic()
        action = "running"
        if self.pid() is None:
            if processes.port_open(HOST, self.port):
                raise self._error(
                    f"port {self.port} is in use by a process this stack did not start"
                )
            self._place()
            self._check_reachable()
            try:
                self.server.start()
            except subprocess.CalledProcessError as exc:
                raise self._error(f"pg_ctl failed with status {exc.returncode}") from exc
            action = "started"
        if not processes.wait_until(self.healthy, START_TIMEOUT_S):
            raise self._error(f"not accepting connections after {START_TIMEOUT_S:.0f} s")
        migrate_core(self.server.dsn)
        registry_sim.migrate_tables(self.server.dsn)  # the embedded simulator's ledger
        if action == "started":
            log.info(
                "stack.service.started",
                service="postgres",
                address=self.address,
                pid=self.pid(),
                seconds=round(time.monotonic() - started, 2),
            )
        return action

    def stop(self) -> bool:
        """Fast shutdown through pg_ctl (the process group is killed if that fails); relocated
        data is removed with its record. True when a server was running."""
        self._forget_stale()
        pid = self.pid()
        if pid is not None:
            try:
                self.server.stop()
            except subprocess.CalledProcessError:
                log.warning("stack.postgres.pg_ctl_stop_failed", pid=pid)
            if not processes.stop_group(pid):
                raise self._error(f"process group {pid} survived SIGKILL")
            log.info("stack.service.stopped", service="postgres", pid=pid)
        self._remove_relocated()
        return pid is not None

    def _remove_relocated(self) -> None:
        base = self.relocated
        if base is None:
            return
        if base.is_dir() and not base.is_symlink():
            shutil.rmtree(base)
            log.info("stack.postgres.relocated_removed", data_dir=str(base / "data"))
        self.record.unlink(missing_ok=True)
        self._use(None)
