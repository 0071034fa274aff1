"""Building a run's report from the database and rendering it to a format."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

import structlog
from psycopg_pool import AsyncConnectionPool

from reconciler.report.data import collect
from reconciler.report.document import Report
from reconciler.report.model import FlagInfo
from reconciler.report.render_html import render_html
from reconciler.report.render_md import render_md
from reconciler.report.verdict import Thresholds, decide
from renewals.links import NO_LINKS, WorkflowLinks

log = structlog.get_logger(__name__)

FORMATS = ("html", "md", "json")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}


async def build_report(
    pool: AsyncConnectionPool,
    run_id: int,
    *,
    flags: FlagInfo,
    thresholds: Thresholds,
    tlds: Iterable[str],
    links: WorkflowLinks = NO_LINKS,
) -> Report:
    names = sorted(set(tlds))
    figures = await collect(pool, run_id, runs=thresholds.runs, tlds=names)
    run_ok = figures.run.status == "ok"
    unattributed = figures.trail_of("unknown").critical
    readiness = tuple(
        decide(
            figures.trail_of(tld),
            flags.row(tld),
            thresholds,
            run_ok=run_ok,
            unattributed_critical=unattributed,
            unchecked=figures.run.unchecked,
            run_start=figures.run.since,
        )
        for tld in names
    )
    report = Report(figures, flags, readiness, thresholds, dt.datetime.now(dt.UTC), links)
    log.info(
        "report.built",
        run_id=run_id,
        verdicts={r.tld: r.verdict.value for r in readiness},
        findings=figures.findings_total,
    )
    return report


def render(report: Report, fmt: str) -> str:
    """The report as `html`, `md` or `json` text."""
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, default=str) + "\n"
    if fmt == "md":
        return render_md(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
