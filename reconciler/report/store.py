"""Report files: `run-<id>.{json,md,html}` in the report folder, `latest.*` copies of the latest
full run; written after each reconciliation, served as stored or generated on the fly."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from psycopg_pool import AsyncConnectionPool

from reconciler.model import RunSummary
from reconciler.report.build import FORMATS, build_report, render
from reconciler.report.data import latest_run_id
from reconciler.report.document import Report
from reconciler.report.model import FlagInfo
from reconciler.report.verdict import Thresholds
from renewals.files import file_lock
from renewals.links import NO_LINKS, WorkflowLinks
from renewals.settings import Settings

log = structlog.get_logger(__name__)


def path_of(directory: Path, run_id: int | str, fmt: str) -> Path:
    name = "latest" if run_id == "latest" else f"run-{int(run_id)}"
    return directory / f"{name}.{fmt}"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers see the old file or the new one, never half of one


def _latest_written(directory: Path) -> int:
    try:
        return int(json.loads(path_of(directory, "latest", "json").read_text())["run"]["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def write(report: Report, directory: Path) -> dict[str, Path]:
    """Write the three files; a full run at least as recent as `latest` becomes the latest."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = {fmt: render(report, fmt) for fmt in FORMATS}
    written = {}
    for fmt, text in texts.items():
        written[fmt] = path_of(directory, report.run_id, fmt)
        _write_text(written[fmt], text)
    if report.figures.run.full:
        with file_lock(directory / ".latest.lock"):
            if report.run_id >= _latest_written(directory):
                for fmt, text in texts.items():
                    _write_text(path_of(directory, "latest", fmt), text)
    return written


def read_stored(directory: Path, run_id: int, fmt: str) -> str | None:
    try:
        return path_of(directory, run_id, fmt).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


FlagReader = Callable[[], Awaitable[FlagInfo]]


async def load(
    pool: AsyncConnectionPool,
    settings: Settings,
    run_id: int | None,
    fmt: str,
    *,
    flags: FlagReader,
    thresholds: Thresholds | None = None,
    fresh: bool = False,
    links: WorkflowLinks = NO_LINKS,
) -> tuple[int, str]:
    """The report of `run_id` (None: the latest full run) as stored, else generated now
    (not stored: readers never write). Raises RunNotFound for an unknown run."""
    if run_id is None:
        run_id = await latest_run_id(pool)
    if not fresh:
        stored = read_stored(settings.reports_dir, run_id, fmt)
        if stored is not None:
            return run_id, stored
    report = await build_report(
        pool,
        run_id,
        flags=await flags(),
        thresholds=thresholds or Thresholds.from_settings(settings),
        tlds=settings.tlds,
        links=links,
    )
    return run_id, render(report, fmt)


async def write_after_run(
    settings: Settings,
    pool: AsyncConnectionPool,
    flags: FlagReader,
    summary: RunSummary,
    links: WorkflowLinks = NO_LINKS,
) -> dict[str, Path] | None:
    """After a reconciliation: its report files (`links`: where its findings' workflows are
    in the Temporal Web UI). A failure is logged, never raised (the run itself is recorded and
    alerted on already)."""
    try:
        report = await build_report(
            pool,
            summary.run_id,
            flags=await flags(),
            thresholds=Thresholds.from_settings(settings),
            tlds=settings.tlds,
            links=links,
        )
        written = write(report, settings.reports_dir)
    except Exception as exc:
        log.warning(
            "report.failed", run_id=summary.run_id, error=f"{type(exc).__name__}: {exc}"[:500]
        )
        return None
    log.info(
        "report.written",
        run_id=summary.run_id,
        directory=str(settings.reports_dir),
        verdicts={r.tld: r.verdict.value for r in report.readiness},
    )
    return written
