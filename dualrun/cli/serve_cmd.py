"""`dualrun serve`: the HTTP API (FastAPI on uvicorn)."""

from __future__ import annotations

import click
import uvicorn

from dualrun.api.app import create_app
from dualrun.cli.context import AppContext, pass_app


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8700, show_default=True)
@pass_app
def serve(app: AppContext, host: str, port: int) -> None:
    """Serve the API: submit, status, cancel, route explain, flags, reports, metrics, health.

    Every call but /healthz needs `Authorization: Bearer TOKEN`: $DUALRUN_API_READ_TOKEN for
    reads, $DUALRUN_API_TOKEN for everything (/metrics only with
    DUALRUN_METRICS_REQUIRE_TOKEN). A call whose token is not configured is refused (503).
    The OpenAPI description is at /openapi.json (a read: a token needed too); no documentation
    pages are served.
    """
    uvicorn.run(create_app(app.settings), host=host, port=port, log_config=None, access_log=False)


COMMANDS = [serve]
