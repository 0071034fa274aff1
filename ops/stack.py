"""The local stack: embedded PostgreSQL, the Temporal dev server, the registry simulator and
the Unleash server.

Each part is started only when the settings say it is embedded; a part configured to a real
server is used as it is, reported `external` with its address (never a password) and never
started or stopped. Unleash is optional: without Node >= 20 (or with `unleash=False`) it is
reported `off` and flags come from the bootstrap file. State lives under `state_dir`:
`postgres/` (ops.pg_service: the data, or where it was put), `temporal/temporal.db`, `unleash/`
(ops.unleash.stack), `logs/<service>.log`, `run/<service>.pid`. `up` and `down` are idempotent
and serialised by a lock file; stale pid files (process gone, or not ours) are removed and the
service started again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog

from ops import processes, temporal
from ops.pg_service import PostgresService, can_connect
from ops.processes import HOST, DetachedService, ServiceStatus
from ops.unleash.stack import UnleashService
from renewals import logs
from renewals.files import file_lock
from renewals.settings import Settings

log = structlog.get_logger(__name__)

SERVICES = ("postgres", "temporal", "registry_sim", "unleash")
Report = Callable[[str, ServiceStatus], None]
"""Called with an action (started, running, external, off, installing, stopped) and the
service's status."""


def safe_url(url: str) -> str:
    """`url` without user, password, query or fragment."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).lstrip("/") or "?"


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
    return ServiceStatus("postgres", "external", address, can_connect(dsn, timeout=3))


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


def external_unleash(settings: Settings) -> ServiceStatus:
    """A configured Unleash server: its URL (no token) and whether /health answers."""
    url = (settings.unleash_url or "").rstrip("/").removesuffix("/api")
    healthy = processes.http_ok(f"{url}/health", timeout=3)
    return ServiceStatus("unleash", "external", safe_url(url), healthy, ui_url=safe_url(url))


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
        UnleashService(settings).status()
        if settings.embedded_unleash
        else external_unleash(settings),
    ]


def _detached(settings: Settings) -> list[tuple[bool, DetachedService]]:
    return [
        (settings.embedded_temporal, temporal.service(settings)),
        (settings.embedded_registry, registry_sim_service(settings)),
    ]


def _lock(settings: Settings) -> Path:
    return settings.state_dir / "run" / "stack.lock"


def up(
    settings: Settings, report: Report | None = None, *, unleash: bool = True
) -> list[ServiceStatus]:
    """Start every embedded part not already healthy, in order; returns the final statuses.
    `unleash=False`: the stack's Unleash is not run (stopped if it ran)."""
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
        if settings.embedded_unleash:
            flags = UnleashService(settings)
            if unleash and settings.embedded_database and flags.needs_install():
                _report(report, "installing", replace(flags.status(), note="npm ci, first use"))
            _report(report, flags.start(enabled=unleash), flags.status())
        else:
            _report(report, "external", external_unleash(settings))
        return status(settings)


def down(settings: Settings, report: Report | None = None) -> list[str]:
    """Stop what this stack started, in reverse order (never an external part)."""
    stopped: list[str] = []
    with file_lock(_lock(settings)):
        services: list[DetachedService | PostgresService | UnleashService] = []
        if settings.embedded_unleash:
            services.append(UnleashService(settings))
        services += [service for embedded, service in reversed(_detached(settings)) if embedded]
        if settings.embedded_database:
            services.append(PostgresService(settings))
        for service in services:
            pid = service.pid()
            if service.stop():
                stopped.append(service.name)
                _report(report, "stopped", replace(service.status(), pid=pid))
    return stopped


def _report(report: Report | None, action: str, service_status: ServiceStatus) -> None:
    """Log the action and hand it to `report`. A part not run (`off`) is said once: by
    `report` when there is one and a person reads the logs (console lines), else logged."""
    if action == "off":
        if report is None or logs.json_lines():
            log.warning(f"stack.{service_status.name}.off", reason=service_status.note)
    elif action not in ("started", "stopped"):  # those are logged where they happen
        log.info(
            f"stack.service.{action}",
            service=service_status.name,
            address=service_status.address,
        )
    if report is not None:
        report(action, service_status)
