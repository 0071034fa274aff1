"""A run's report as one value: its figures, the flag state, the readiness verdicts, and where
its findings' Temporal workflows are in the Web UI."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from reconciler.report.model import SEVERITIES, Figures, FindingRow, FlagInfo
from reconciler.report.verdict import Readiness, Thresholds
from renewals.links import NO_LINKS, WorkflowLinks


@dataclass(frozen=True)
class Report:
    figures: Figures
    flags: FlagInfo
    readiness: tuple[Readiness, ...]
    thresholds: Thresholds
    generated_at: dt.datetime
    links: WorkflowLinks = NO_LINKS

    def workflow_url(self, row: FindingRow) -> str | None:
        """The Web UI page of the Temporal workflow a finding is about (None: none, or no UI)."""
        return self.links.workflow(row.workflow_id)

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
                "rollouts": [e.as_dict() for e in f.rollouts if e.tld == tld],
            }
        return {
            "report_version": 2,
            "generated_at": self.generated_at.isoformat(),
            "run": f.run.as_dict(),
            "thresholds": self.thresholds.as_dict(),
            "flags": self.flags.as_dict(),
            "tlds": tlds,
            "findings_total": f.findings_total,
            "findings_by_kind": dict(sorted(f.by_kind.items())),
            "findings_by_severity": {s: f.by_severity.get(s, 0) for s in SEVERITIES},
            "findings": [
                {**row.as_dict(), "workflow_url": self.workflow_url(row)} for row in f.findings
            ],
            "history": [p.as_dict() for p in f.history],
        }
