"""What every command shares: the settings read once, the exit codes, and how data is printed."""

from __future__ import annotations

import json
from typing import Any

import click

from renewals.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


class AppContext:
    """What every command gets: the settings, read once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


pass_app = click.make_pass_decorator(AppContext)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print data as JSON (one document) or as the given human text."""
    if as_json:
        click.echo(json.dumps(data, default=str, sort_keys=True))
    else:
        click.echo(text if text is not None else json.dumps(data, default=str, indent=2))
