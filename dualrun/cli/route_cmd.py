"""`dualrun route explain`: how new renewals of these domains would be routed (nothing stored)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from dualrun.cli.context import AppContext, pass_app
from dualrun.routing.router import Decision, Router
from dualrun.routing.service import explain_names
from dualrun.wiring import started_chain


@click.group("route")
def route() -> None:
    """Routing of renewals by the feature flags."""


def _names(domains: tuple[str, ...], path: Path | None) -> list[str]:
    names = list(domains)
    if path is not None:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        names += [line.strip() for line in text.splitlines() if line.strip()]
    return names


@route.command("explain")
@click.argument("domains", nargs=-1)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Read more names from a file, one per line ('-': standard input).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per domain.")
@pass_app
def explain(app: AppContext, domains: tuple[str, ...], path: Path | None, as_json: bool) -> None:
    """Engine, mode, rollout bucket, flag source and reason for each domain."""
    names = _names(domains, path)
    if not names:
        raise click.UsageError("give at least one DOMAIN or --file")

    async def run() -> list[Decision]:
        async with started_chain(app.settings) as chain:
            return explain_names(Router(chain), names, app.settings.tlds)

    decisions = asyncio.run(run())
    out = []
    for d in decisions:
        if as_json:
            out.append(json.dumps(d.explain(), sort_keys=True))
        else:
            out.append(
                f"{d.domain}  engine={d.engine.value}  mode={d.mode.value}  bucket={d.bucket}"
                f"  source={d.source.value}  {d.reason}"
            )
    click.echo("\n".join(out))


COMMANDS = [route]
