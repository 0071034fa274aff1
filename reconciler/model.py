"""Findings and runs of the reconciler (DESIGN §5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    DUPLICATE_OPERATION = "duplicate_operation"
    DOUBLE_RENEWAL = "double_renewal"
    DOUBLE_CHARGE = "double_charge"
    LOST_RENEWAL = "lost_renewal"
    UNRECORDED_RENEWAL = "unrecorded_renewal"
    STATUS_DRIFT = "status_drift"
    STUCK_OPERATION = "stuck_operation"
    ROUTING_VIOLATION = "routing_violation"
    SHADOW_MISMATCH = "shadow_mismatch"
    REFUND_MISSING = "refund_missing"
    CROSS_ENGINE_DUPLICATE = "cross_engine_duplicate"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY: dict[Kind, Severity] = {
    Kind.DUPLICATE_OPERATION: Severity.WARNING,
    Kind.DOUBLE_RENEWAL: Severity.CRITICAL,
    Kind.DOUBLE_CHARGE: Severity.CRITICAL,
    Kind.LOST_RENEWAL: Severity.CRITICAL,
    Kind.UNRECORDED_RENEWAL: Severity.WARNING,
    Kind.STATUS_DRIFT: Severity.WARNING,
    Kind.STUCK_OPERATION: Severity.WARNING,
    Kind.ROUTING_VIOLATION: Severity.WARNING,
    Kind.SHADOW_MISMATCH: Severity.INFO,
    Kind.REFUND_MISSING: Severity.CRITICAL,
    Kind.CROSS_ENGINE_DUPLICATE: Severity.CRITICAL,
}

# New findings of these kinds page someone: log event, counter and webhook.
ALERTING = frozenset(
    {
        Kind.DUPLICATE_OPERATION,
        Kind.DOUBLE_RENEWAL,
        Kind.DOUBLE_CHARGE,
        Kind.LOST_RENEWAL,
        Kind.REFUND_MISSING,
        Kind.CROSS_ENGINE_DUPLICATE,
    }
)


@dataclass(frozen=True)
class Finding:
    kind: Kind
    key: str  # stable: a rerun over the same window finds the same key
    summary: str
    tld: str | None = None
    engine: str | None = None
    idempotency_key: str | None = None
    domain: str | None = None
    operation_ids: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]


@dataclass(frozen=True)
class Window:
    since: dt.datetime
    until: dt.datetime

    @classmethod
    def last(cls, hours: float) -> Window:
        """The last `hours` up to now."""
        now = dt.datetime.now(dt.UTC)
        return cls(now - dt.timedelta(hours=hours), now)

    def as_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    kind: str
    window: Window
    operations: int
    findings: dict[str, int]
    new_findings: int
    duration_s: float
    details: tuple[Finding, ...] = ()
    unchecked: tuple[str, ...] = ()  # checks this run could not make (status_drift: no Temporal)

    def as_dict(self, details: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "kind": self.kind,
            "window": self.window.as_dict(),
            "operations": self.operations,
            "findings": self.findings,
            "new_findings": self.new_findings,
            "duration_s": round(self.duration_s, 3),
            "unchecked": list(self.unchecked),
        }
        if details:
            out["details"] = [
                {
                    "kind": f.kind.value,
                    "severity": f.severity.value,
                    "key": f.key,
                    "summary": f.summary,
                    "tld": f.tld,
                    "engine": f.engine,
                    "idempotency_key": f.idempotency_key,
                    "operation_ids": list(f.operation_ids),
                    "evidence": f.evidence,
                }
                for f in self.details
            ]
        return out
