"""Reports of reconciliation runs (JSON, Markdown, self-contained HTML with SVG charts) and the
readiness verdict for each TLD's next flag step (DESIGN §5)."""

from reconciler.report.build import FORMATS, MEDIA_TYPES, build_report, render
from reconciler.report.data import RunNotFound, latest_run_id
from reconciler.report.document import Report
from reconciler.report.store import load, write, write_after_run
from reconciler.report.verdict import LADDER, Readiness, Thresholds, Verdict, decide

__all__ = [
    "FORMATS",
    "LADDER",
    "MEDIA_TYPES",
    "Readiness",
    "Report",
    "RunNotFound",
    "Thresholds",
    "Verdict",
    "build_report",
    "decide",
    "latest_run_id",
    "load",
    "render",
    "write",
    "write_after_run",
]
