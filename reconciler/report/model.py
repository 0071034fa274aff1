"""The figures of a reconciliation report: plain frozen values, JSON-ready through `as_dict`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

ENGINES = ("legacy", "temporal")
SEVERITIES = ("critical", "warning", "info")


def rate(part: int, whole: int) -> float | None:
    """part/whole as a percentage, None when there is nothing to divide."""
    return None if whole <= 0 else round(100.0 * part / whole, 4)


UNCHECKED_BECAUSE = {"status_drift": "Temporal was unreachable"}


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    kind: str
    status: str
    since: dt.datetime
    until: dt.datetime
    started_at: dt.datetime
    finished_at: dt.datetime | None
    operations: int | None
    counts: Mapping[str, int]
    new_findings: int | None
    error: str | None
    unchecked: tuple[str, ...] = ()  # checks the run could not make

    @property
    def unchecked_note(self) -> str | None:
        """e.g. `not checked in this run: status_drift (Temporal was unreachable), so no finding
        of that kind means nothing`."""
        if not self.unchecked:
            return None
        why = "; ".join(f"{c} ({UNCHECKED_BECAUSE.get(c, 'not run')})" for c in self.unchecked)
        return f"not checked in this run: {why}, so no finding of that kind means nothing"

    @property
    def full(self) -> bool:
        """A run of every check (a sweep only looks for duplicates and double charges)."""
        return self.kind != "sweep"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = dict(self.counts)
        for name in ("since", "until", "started_at", "finished_at"):
            value = getattr(self, name)
            out[name] = value.isoformat() if value else None
        return out


@dataclass(frozen=True)
class Durations:
    """Seconds from created_at to finished_at of the finished operations."""

    count: int = 0
    min: float | None = None
    p25: float | None = None
    p50: float | None = None
    p75: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EngineFigures:
    """One TLD and engine over the run's window."""

    tld: str
    engine: str
    total: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    open: int = 0
    durations: Durations = field(default_factory=Durations)
    findings: Mapping[str, int] = field(default_factory=dict)
    transient: int = 0  # failed on a transient failure (rate limited, unavailable, timeout)

    @property
    def success_rate(self) -> float | None:
        """done / (done + failed); cancelled and unfinished operations are left out."""
        return rate(self.done, self.done + self.failed)

    @property
    def transient_rate(self) -> float | None:
        """Transient failures / (done + failed): the engine's or its provider's share."""
        return rate(self.transient, self.done + self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tld": self.tld,
            "engine": self.engine,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "open": self.open,
            "success_rate": self.success_rate,
            "transient_failures": self.transient,
            "transient_failure_rate": self.transient_rate,
            "durations_s": self.durations.as_dict(),
            "findings": dict(sorted(self.findings.items())),
        }


@dataclass(frozen=True)
class ShadowFigures:
    """A TLD's shadow comparisons (reconciler/shadow.py): compared (agree or business
    mismatch), mismatched, pending, not comparable (a transient failure on either side), and
    the A/A sample's plan pairs (their mismatches: the comparator's noise)."""

    tld: str
    compared: int = 0
    mismatched: int = 0
    pending: int = 0
    not_comparable: int = 0
    aa_compared: int = 0
    aa_mismatched: int = 0
    plan_failed: int = 0  # not comparable because the plan's run failed (a transient failure)

    @property
    def match_rate(self) -> float | None:
        """agree / (agree + business mismatch): not comparable and pending left out."""
        return rate(self.compared - self.mismatched, self.compared)

    @property
    def plan_failure_rate(self) -> float | None:
        """The plan side's transient failure rate: of the decided comparisons, those whose plan
        failed (since dualrun-shadow-refusals a registry refusal is a plan, not a failure)."""
        return rate(self.plan_failed, self.compared + self.not_comparable)

    @property
    def noise_rate(self) -> float | None:
        """Mismatches between two plans of one renewal, percent."""
        return rate(self.aa_mismatched, self.aa_compared)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "match_rate": self.match_rate,
            "noise_rate": self.noise_rate,
            "plan_failure_rate": self.plan_failure_rate,
        }


@dataclass(frozen=True)
class FindingRow:
    key: str
    kind: str
    severity: str
    tld: str | None
    engine: str | None
    summary: str
    idempotency_key: str | None
    operation_ids: tuple[str, ...]
    new: bool
    workflow_id: str | None = None  # the Temporal workflow it is about, when there is one

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "operation_ids": list(self.operation_ids)}


@dataclass(frozen=True)
class HistoryPoint:
    """One of the last full runs: its findings by severity and its shadow figures per TLD."""

    run_id: int
    kind: str
    since: dt.datetime
    until: dt.datetime
    findings: Mapping[str, int]
    shadow: Mapping[str, ShadowFigures]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "findings": {s: self.findings.get(s, 0) for s in SEVERITIES},
            "shadow": {t: s.as_dict() for t, s in sorted(self.shadow.items())},
        }


@dataclass(frozen=True)
class Trail:
    """A TLD over its last full runs since its flag last changed (distinct operations of their
    windows): what the readiness verdict is decided on (reconciler/report/trail.py)."""

    tld: str
    runs: int = 0
    temporal_done: int = 0
    temporal_failed: int = 0
    shadow_compared: int = 0
    shadow_mismatched: int = 0
    aa_compared: int = 0
    aa_mismatched: int = 0
    critical: int = 0  # critical findings not on legacy alone: they block the next step
    critical_legacy: int = 0  # legacy's own (the reason for the move): shown, never blocking
    since_change: dt.datetime | None = None  # the TLD's last rollout event (None: never)
    run_ids: tuple[int, ...] = ()  # the runs judged on, newest first

    @property
    def temporal_finished(self) -> int:
        return self.temporal_done + self.temporal_failed

    @property
    def temporal_success(self) -> float | None:
        return rate(self.temporal_done, self.temporal_finished)

    @property
    def shadow_match(self) -> float | None:
        return rate(self.shadow_compared - self.shadow_mismatched, self.shadow_compared)

    @property
    def noise(self) -> float | None:
        """The comparator's noise: A/A plan pairs that disagreed, percent."""
        return rate(self.aa_mismatched, self.aa_compared)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "since_change": self.since_change.isoformat() if self.since_change else None,
            "run_ids": list(self.run_ids),
            "temporal_success_rate": self.temporal_success,
            "shadow_match_rate": self.shadow_match,
            "noise_rate": self.noise,
        }


@dataclass(frozen=True)
class FlagRow:
    tld: str
    mode: str
    rollout: int | None


@dataclass(frozen=True)
class FlagInfo:
    """The routing flag per TLD as `flags show` reads it; available False: it could not be
    read (`detail` says why)."""

    available: bool
    source: str | None = None
    enabled: bool = False
    detail: str = ""
    rows: tuple[FlagRow, ...] = ()

    def row(self, tld: str) -> FlagRow | None:
        return next((r for r in self.rows if r.tld == tld), None) if self.available else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "source": self.source,
            "enabled": self.enabled,
            "detail": self.detail,
            "tlds": [asdict(r) for r in self.rows],
        }


@dataclass(frozen=True)
class RolloutRow:
    """A flag change recorded by `dualrun rollout` or `dualrun flags set`."""

    at: dt.datetime
    tld: str
    action: str
    actor: str
    from_mode: str | None
    from_rollout: int | None
    to_mode: str
    to_rollout: int | None
    verdict: str | None
    run_id: int | None
    forced: bool
    reason: str | None
    findings: tuple[str, ...]

    @staticmethod
    def label(mode: str | None, rollout: int | None) -> str:
        if mode is None:
            return "-"
        return f"{mode} {rollout}%" if mode == "temporal" else mode

    @property
    def from_label(self) -> str:
        return self.label(self.from_mode, self.from_rollout)

    @property
    def to_label(self) -> str:
        return self.label(self.to_mode, self.to_rollout)

    @property
    def why(self) -> str:
        parts = [self.reason or ""]
        if self.findings:
            parts.append(f"findings {', '.join(self.findings)}")
        if self.run_id:
            parts.append(f"run {self.run_id}")
        return "; ".join(p for p in parts if p)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat(), "findings": list(self.findings)}


@dataclass(frozen=True)
class Figures:
    run: RunInfo
    engines: tuple[EngineFigures, ...]
    shadow: tuple[ShadowFigures, ...]
    findings: tuple[FindingRow, ...]  # the first MAX_FINDINGS, critical first
    by_kind: Mapping[str, int]
    by_severity: Mapping[str, int]
    history: tuple[HistoryPoint, ...]
    trail: tuple[Trail, ...]
    rollouts: tuple[RolloutRow, ...] = ()  # flag changes up to the run, newest first

    @property
    def findings_total(self) -> int:
        return sum(self.by_kind.values())

    def trail_of(self, tld: str) -> Trail:
        return next((t for t in self.trail if t.tld == tld), Trail(tld))

    @property
    def tlds(self) -> tuple[str, ...]:
        return tuple(sorted({e.tld for e in self.engines} | {s.tld for s in self.shadow}))
