"""`dualrun db migrate`."""

from __future__ import annotations

import click

from dualrun.cli.context import AppContext, emit, pass_app
from dualrun.wiring import migrate_for


@click.group("db")
def db() -> None:
    """Database schema."""


@db.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="Print what was applied as JSON.")
@pass_app
def migrate_cmd(app: AppContext, as_json: bool) -> None:
    """Apply missing migrations (idempotent; safe from several processes at once)."""
    applied = migrate_for(app.settings)
    text = "\n".join(
        f"{component}: applied {', '.join(map(str, versions))}"
        if versions
        else f"{component}: up to date"
        for component, versions in applied.items()
    )
    emit({"applied": applied}, as_json, text)


COMMANDS = [db]
