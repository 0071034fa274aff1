"""`dualrun report`: a reconciliation run's report (Markdown, HTML or JSON)."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import click

from dualrun.cli.context import AppContext, pass_app
from dualrun.wiring import read_flags, workflow_links
from reconciler.report import FORMATS, Thresholds, load
from renewals.db.pool import async_pool

_PERCENT = click.FloatRange(0, 100)


@click.command("report")
@click.option("--run", "run_id", type=click.IntRange(min=1), help="Run id (default: latest).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here (default: standard output).",
)
@click.option(
    "--fresh", is_flag=True, help="Build it from the database now, not from the stored file."
)
@click.option(
    "--min-shadow-match",
    type=_PERCENT,
    help="Readiness: minimum shadow match rate, percent [DUALRUN_REPORT_MIN_SHADOW_MATCH].",
)
@click.option(
    "--min-success-rate",
    type=_PERCENT,
    help="Readiness: minimum Temporal success rate, percent [DUALRUN_REPORT_MIN_SUCCESS_RATE].",
)
@click.option(
    "--min-volume",
    type=click.IntRange(min=0),
    help="Readiness: shadow comparisons / Temporal renewals needed [DUALRUN_REPORT_MIN_VOLUME].",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 366),
    help="Readiness and trends: the last N full runs [DUALRUN_REPORT_RUNS].",
)
@pass_app
def report(
    app: AppContext,
    run_id: int | None,
    fmt: str,
    output: Path | None,
    fresh: bool,
    min_shadow_match: float | None,
    min_success_rate: float | None,
    min_volume: int | None,
    runs: int | None,
) -> None:
    """Print the report of a reconciliation run: per TLD and engine volumes, success rate,
    duration percentiles, findings by kind, shadow match rate, flag state and the readiness
    verdict for the next flag step.

    The stored file (written after each run, in DUALRUN_REPORT_DIR) when there is one, else
    built now; any threshold option builds it now.
    """
    assert fmt in FORMATS
    overrides = {
        "min_shadow_match": min_shadow_match,
        "min_success_rate": min_success_rate,
        "min_volume": min_volume,
        "runs": runs,
    }
    thresholds = Thresholds.from_settings(app.settings, **overrides)
    fresh = fresh or any(v is not None for v in overrides.values())

    async def run() -> str:
        pool = await async_pool(app.settings.dsn, max_size=2, name="dualrun-report")
        try:
            flags = partial(read_flags, app.settings)
            _, text = await load(
                pool,
                app.settings,
                run_id,
                fmt,
                flags=flags,
                thresholds=thresholds,
                fresh=fresh,
                links=workflow_links(app.settings),
            )
        finally:
            await pool.close()
        return text

    text = asyncio.run(run())
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


COMMANDS = [report]
