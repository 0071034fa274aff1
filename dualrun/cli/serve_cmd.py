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

    Mutating calls need `Authorization: Bearer $DUALRUN_API_TOKEN` (refused with 503 when no
    token is configured). OpenAPI description at /openapi.json, docs at /docs.
    """
    uvicorn.run(create_app(app.settings), host=host, port=port, log_config=None, access_log=False)


COMMANDS = [serve]
