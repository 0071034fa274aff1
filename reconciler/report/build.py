"""A run's report: its figures, the flag state, the readiness verdicts; rendered to a format."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from dualrun.flags.port import FlagView
from reconciler.report.data import collect
from reconciler.report.model import SEVERITIES, Figures, FlagInfo, FlagRow
from reconciler.report.verdict import Readiness, Thresholds, decide
from renewals.settings import Settings

log = structlog.get_logger(__name__)

FORMATS = ("html", "md", "json")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}


@dataclass(frozen=True)
class Report:
    figures: Figures
    flags: FlagInfo
    readiness: tuple[Readiness, ...]
    thresholds: Thresholds
    generated_at: dt.datetime

    @property
    def run_id(self) -> int:
        return self.figures.run.run_id

    def verdict_of(self, tld: str) -> Readiness | None:
        return next((r for r in self.readiness if r.tld == tld), None)

    def as_dict(self) -> dict[str, Any]:
        f = self.figures
        tlds: dict[str, Any] = {}
        for tld in sorted(set(f.tlds) | {r.tld for r in self.readiness}):
            readiness = self.verdict_of(tld)
            shadow = next((s for s in f.shadow if s.tld == tld), None)
            flag = self.flags.row(tld)
            tlds[tld] = {
                "engines": {e.engine: e.as_dict() for e in f.engines if e.tld == tld},
                "shadow": shadow.as_dict() if shadow else None,
                "flag": {"mode": flag.mode, "rollout": flag.rollout} if flag else None,
                "trail": f.trail_of(tld).as_dict(),
                "readiness": readiness.as_dict() if readiness else None,
            }
        return {
            "report_version": 1,
            "generated_at": self.generated_at.isoformat(),
            "run": f.run.as_dict(),
            "thresholds": self.thresholds.as_dict(),
            "flags": self.flags.as_dict(),
            "tlds": tlds,
            "findings_total": f.findings_total,
            "findings_by_kind": dict(sorted(f.by_kind.items())),
            "findings_by_severity": {s: f.by_severity.get(s, 0) for s in SEVERITIES},
            "findings": [row.as_dict() for row in f.findings],
            "history": [p.as_dict() for p in f.history],
        }


def flag_info(view: FlagView, tlds: Iterable[str]) -> FlagInfo:
    """Per TLD the mode and rollout the router uses now, as `dualrun flags show` prints them."""
    rows = []
    for tld in sorted(tlds):
        rule = view.state.rule(tld) if view.state.enabled else None
        rows.append(
            FlagRow(tld, rule.mode.value if rule else "legacy", rule.rollout if rule else None)
        )
    return FlagInfo(True, view.source.value, view.state.enabled, view.detail, tuple(rows))


async def read_flags(settings: Settings) -> FlagInfo:
    """The flag state from the flag sources (Unleash, last known, bootstrap file)."""
    from dualrun.routing.runtime import started_chain

    try:
        async with started_chain(settings) as chain:
            return flag_info(chain.read(), settings.tlds)
    except Exception as exc:  # the report says so rather than failing
        log.warning("report.flags.unavailable", error=type(exc).__name__)
        return FlagInfo(False, detail=f"flag state unavailable ({type(exc).__name__})")


async def build_report(
    pool: AsyncConnectionPool,
    run_id: int,
    *,
    flags: FlagInfo,
    thresholds: Thresholds,
    tlds: Iterable[str],
) -> Report:
    figures = await collect(pool, run_id, runs=thresholds.runs)
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
        )
        for tld in sorted(set(tlds))
    )
    report = Report(figures, flags, readiness, thresholds, dt.datetime.now(dt.UTC))
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
        from reconciler.report.render_md import render_md

        return render_md(report)
    if fmt == "html":
        from reconciler.report.render_html import render_html

        return render_html(report)
    raise ValueError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
