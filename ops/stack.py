"""The local stack: embedded PostgreSQL, the Temporal dev server and the registry simulator.

Each part is started only when the settings say it is embedded; a part configured to a real
server is used as it is, reported `external` with its address (never a password) and never
started or stopped. State lives under `state_dir`: `postgres/data` (log `postgres/postgres.log`),
`temporal/temporal.db`, `logs/<service>.log`, `run/<service>.pid`. `up` and `down` are
idempotent and serialised by a lock file; stale pid files (process gone, or not ours) are
removed and the service started again.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog

from ops import processes, registry_sim, temporal
from ops.postgres import EmbeddedPostgres, _run_as
from ops.processes import HOST, START_TIMEOUT_S, DetachedService, ServiceStatus, StackError
from renewals.db.migrate import migrate_core
from renewals.files import file_lock
from renewals.settings import Settings

log = structlog.get_logger(__name__)

SERVICES = ("postgres", "temporal", "registry_sim")
Report = Callable[[str, ServiceStatus], None]
"""Called with an action (started, running, external, stopped) and the service's status."""


def safe_url(url: str) -> str:
    """`url` without user, password, query or fragment."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).lstrip("/") or "?"


def _can_connect(dsn: str, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


class PostgresService:
    """The embedded server (ops.postgres) under `state_dir/postgres/data` on 127.0.0.1:pg_port."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.port = settings.pg_port
        self.server = EmbeddedPostgres(settings.state_dir / "postgres" / "data", settings.pg_port)
        self.address = f"{HOST}:{settings.pg_port}"
        self.markers = ["postgres", str(self.server.pgdata)]

    def pid(self) -> int | None:
        """The postmaster's pid, only when postmaster.pid names a live server of this data dir."""
        pid = self.server.pid()
        return pid if pid is not None and processes.is_ours(pid, self.markers) else None

    def healthy(self) -> bool:
        return self.pid() is not None and _can_connect(self.server.dsn)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        healthy = pid is not None and _can_connect(self.server.dsn)
        log_file = str(self.server.log_file)
        return ServiceStatus("postgres", "embedded", self.address, healthy, pid, log_file=log_file)

    def _error(self, problem: str) -> StackError:
        return StackError("postgres", problem, processes.log_tail(self.server.log_file))

    def _forget_stale(self) -> None:
        pid_file = self.server.pgdata / "postmaster.pid"
        if pid_file.exists() and self.pid() is None:
            log.warning("stack.service.stale_pid", service="postgres", pid=self.server.pid())
            pid_file.unlink(missing_ok=True)

    def _check_reachable(self) -> None:
        """As root the server runs as an unprivileged user, who must traverse every parent."""
        user = _run_as()
        if user is None:
            return
        uid = pwd.getpwnam(user).pw_uid
        for parent in self.server.pgdata.parents:
            st = parent.stat()
            if not (st.st_mode & 0o001 or st.st_uid == uid):
                raise self._error(
                    f"{parent} cannot be traversed by the OS user {user!r} the server runs as "
                    "(PostgreSQL refuses root): chmod o+x it or choose another DUALRUN_STATE_DIR"
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
            self.server.pgdata.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.server.pgdata.parent, 0o755)  # noqa: S103 - its server user must traverse it
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
            seconds = round(time.monotonic() - started, 2)
            log.info(
                "stack.service.started",
                service="postgres",
                address=self.address,
                pid=self.pid(),
                seconds=seconds,
            )
        return action

    def stop(self) -> bool:
        """Fast shutdown through pg_ctl (the process group is killed if that fails)."""
        self._forget_stale()
        pid = self.pid()
        if pid is None:
            return False
        try:
            self.server.stop()
        except subprocess.CalledProcessError:
            log.warning("stack.postgres.pg_ctl_stop_failed", pid=pid)
        if not processes.stop_group(pid):
            raise self._error(f"process group {pid} survived SIGKILL")
        log.info("stack.service.stopped", service="postgres", pid=pid)
        return True


def external_postgres(settings: Settings) -> ServiceStatus:
    """A configured server: host:port/dbname (no user, no password) and whether it answers."""
    dsn = settings.dsn
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return ServiceStatus("postgres", "external", "(unparsable DSN)", False)
    host, port, dbname = (
        info.get("host") or "localhost",
        info.get("port") or 5432,
        info.get("dbname"),
    )
    address = f"{host}:{port}/{dbname or ''}"
    return ServiceStatus("postgres", "external", address, _can_connect(dsn, timeout=3))


def registry_sim_service(settings: Settings) -> DetachedService:
    """`python -m dualrun registry-sim serve` (it migrates its tables), healthy on GET /healthz."""
    port = settings.registry_sim_port
    argv = [sys.executable, "-m", "dualrun", "registry-sim", "serve", "--host", HOST]
    argv += ["--port", str(port)]
    return DetachedService(
        "registry_sim",
        settings.state_dir,
        argv=lambda: argv,
        markers=["registry-sim", "serve", str(port)],
        ports=[port],
        health=lambda: processes.http_ok(f"http://{HOST}:{port}/healthz"),
        address=f"http://{HOST}:{port}",
        env={**os.environ, "DUALRUN_STATE_DIR": str(settings.state_dir)},
    )


def external_registry(settings: Settings) -> ServiceStatus:
    """Configured registries: their URLs (no credentials) and whether each accepts connections."""
    named = {"*": settings.registry_url} if settings.registry_url else {}
    named.update(settings.registry_urls)
    healthy = True
    for url in named.values():
        parts = urlsplit(url if "://" in url else f"//{url}")
        default = 443 if parts.scheme == "https" else 80
        healthy = healthy and processes.port_open(parts.hostname or HOST, parts.port or default, 3)
    address = ", ".join(
        safe_url(url) if tld == "*" else f"{tld}={safe_url(url)}" for tld, url in named.items()
    )
    return ServiceStatus("registry_sim", "external", address, healthy)


def status(settings: Settings) -> list[ServiceStatus]:
    """The state of every part of the stack, embedded or external, in start order."""
    return [
        PostgresService(settings).status()
        if settings.embedded_database
        else external_postgres(settings),
        temporal.service(settings).status()
        if settings.embedded_temporal
        else temporal.external_status(settings),
        registry_sim_service(settings).status()
        if settings.embedded_registry
        else external_registry(settings),
    ]


def _detached(settings: Settings) -> list[tuple[bool, DetachedService]]:
    return [
        (settings.embedded_temporal, temporal.service(settings)),
        (settings.embedded_registry, registry_sim_service(settings)),
    ]


def _lock(settings: Settings) -> Path:
    return settings.state_dir / "run" / "stack.lock"


def up(settings: Settings, report: Report | None = None) -> list[ServiceStatus]:
    """Start every embedded part not already healthy, in order; returns the final statuses."""
    with file_lock(_lock(settings)):
        if settings.embedded_database:
            pg = PostgresService(settings)
            _report(report, pg.start(), pg.status())
        else:
            _report(report, "external", external_postgres(settings))
        for embedded, service in _detached(settings):
            if embedded:
                _report(report, service.start(), service.status())
            elif service.name == "temporal":
                _report(report, "external", temporal.external_status(settings))
            else:
                _report(report, "external", external_registry(settings))
        return status(settings)


def down(settings: Settings, report: Report | None = None) -> list[str]:
    """Stop what this stack started, in reverse order (never an external part)."""
    stopped: list[str] = []
    with file_lock(_lock(settings)):
        services: list[DetachedService | PostgresService] = [
            service for embedded, service in reversed(_detached(settings)) if embedded
        ]
        if settings.embedded_database:
            services.append(PostgresService(settings))
        for service in services:
            pid = service.pid()
            if service.stop():
                stopped.append(service.name)
                _report(report, "stopped", replace(service.status(), pid=pid))
    return stopped


def _report(report: Report | None, action: str, service_status: ServiceStatus) -> None:
    if action not in ("started", "stopped"):  # those two are logged where they happen
        log.info(
            f"stack.service.{action}",
            service=service_status.name,
            address=service_status.address,
        )
    if report is not None:
        report(action, service_status)
