"""The readiness verdict: may a TLD take the next step of the flag ladder?

legacy → shadow → temporal 1% → 5% → 25% → 50% → 100%. Decided on the TLD's trail: its last
N full runs (`runs`, DUALRUN_REPORT_RUNS) whose window starts after its flag last changed
(trail.py), so evidence from another step never counts for this one:

- blocked: a critical finding not on legacy alone (legacy's own double charges are the reason
  for the move, not against it), a Temporal success rate under its minimum, or a shadow match
  rate under its minimum by more than the comparator's measured noise (A/A plans; credited only
  over at least `min_aa_pairs` pairs);
- hold: not enough to judge (too few shadow comparisons or Temporal renewals; no full run since
  the flag last changed, or this run's window starts before that change; the flag state
  unreadable; the run failed or could not make a check);
- ready: otherwise, with the figures that justify it: one full run since the change is the
  least a step is judged on;
- complete: at temporal 100% with N clean runs there (fewer: hold, "k of N clean runs at
  temporal 100%"): legacy can be retired for the TLD (with a checklist).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.report.model import FlagRow, Trail
from renewals.settings import Settings


class Verdict(StrEnum):
    READY = "ready"
    HOLD = "hold"
    BLOCKED = "blocked"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Step:
    mode: str
    rollout: int = 100

    @property
    def label(self) -> str:
        return f"temporal {self.rollout}%" if self.mode == "temporal" else self.mode


LADDER: tuple[Step, ...] = (
    Step("legacy"),
    Step("shadow"),
    *(Step("temporal", r) for r in (1, 5, 25, 50, 100)),
)


def position(mode: str, rollout: int | None) -> int:
    """Index of the highest rung the flag has reached (temporal 10% is past 5%, short of 25%);
    temporal below 1% and any shadow rollout count as shadow."""
    if mode == "legacy":
        return 0
    if mode == "shadow":
        return 1
    pct = 100 if rollout is None else rollout
    return max(i for i, step in enumerate(LADDER) if i <= 1 or step.rollout <= pct)


@dataclass(frozen=True)
class Thresholds:
    min_shadow_match: float = 99.5  # percent of compared shadow plans that agreed
    min_success_rate: float = 98.0  # percent of finished Temporal renewals done
    min_volume: int = 100  # shadow comparisons / finished Temporal renewals needed to judge
    runs: int = 7  # the last full runs the verdict (and the trend charts) look at
    min_aa_pairs: int = 100  # A/A pairs under which the measured noise is not credited

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Thresholds:
        """Defaults, then DUALRUN_REPORT_* settings, then overrides (None: not given)."""
        from_env: dict[str, Any] = {
            "min_shadow_match": settings.report_min_shadow_match,
            "min_success_rate": settings.report_min_success_rate,
            "min_volume": settings.report_min_volume,
            "runs": settings.report_runs,
            "min_aa_pairs": settings.report_min_aa_pairs,
        }
        chosen = cls()
        for layer in (from_env, overrides):
            chosen = dataclasses.replace(
                chosen, **{k: v for k, v in layer.items() if v is not None}
            )
        return chosen

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Readiness:
    tld: str
    verdict: Verdict
    current: str | None
    next: str | None
    reasons: tuple[str, ...]
    checklist: tuple[str, ...] = ()  # complete: what retiring legacy for the TLD takes

    @property
    def severity(self) -> str:
        if self.verdict == Verdict.BLOCKED:
            return "critical"
        return "warning" if self.verdict == Verdict.HOLD and self.next else "info"

    @property
    def line(self) -> str:
        """e.g. `info: shadow match 99.97% over the last 7 runs, no critical finding → ready
        for temporal 1%`."""
        if self.verdict == Verdict.COMPLETE:
            target = f"complete at {self.current}: legacy can be retired"
        elif self.next is None:
            target = f"{self.verdict.value} at {self.current}" if self.current else "hold"
        elif self.verdict == Verdict.READY:
            target = f"ready for {self.next}"
        else:
            target = f"{self.verdict.value} at {self.current} (next: {self.next})"
        return f"{self.severity}: {', '.join(self.reasons)} → {target}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "tld": self.tld,
            "verdict": self.verdict.value,
            "severity": self.severity,
            "current": self.current,
            "next": self.next,
            "reasons": list(self.reasons),
            "checklist": list(self.checklist),
            "line": self.line,
        }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _runs(n: int) -> str:
    return "the last run" if n == 1 else f"the last {n} runs"


def _when(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _since_change(trail: Trail, run_start: dt.datetime | None, held: list[str]) -> None:
    """A step is judged on full runs after the flag's last change: at least one, and the run
    judged on must not predate the change."""
    change = trail.since_change
    if change is not None and run_start is not None and run_start < change:
        held.append(
            f"no full run since the flag changed at {_when(change)}: this run's window starts "
            f"at {_when(run_start)}"
        )
    elif trail.runs == 0:
        held.append(
            f"no full reconciliation run since the flag changed at {_when(change)}"
            if change is not None
            else "no full reconciliation run to judge on"
        )


def decide(
    trail: Trail,
    flag: FlagRow | None,
    t: Thresholds,
    *,
    run_ok: bool = True,
    unattributed_critical: int = 0,
    unchecked: tuple[str, ...] = (),
    run_start: dt.datetime | None = None,
) -> Readiness:
    """The verdict for `trail.tld` at its flag state, with every reason (`run_start`: where the
    judged run's window starts)."""
    if flag is None:
        return Readiness(trail.tld, Verdict.HOLD, None, None, ("flag state unavailable",))
    at = position(flag.mode, flag.rollout)
    current = Step(flag.mode, 100 if flag.rollout is None else flag.rollout).label
    last = at == len(LADDER) - 1
    following = None if last else LADDER[at + 1]
    blocked: list[str] = []
    held: list[str] = []
    fine: list[str] = []
    if not run_ok:
        held.append("this run did not finish ok")
    if unchecked:
        held.append(f"this run could not check {', '.join(unchecked)}")
    _since_change(trail, run_start, held)
    over = _runs(trail.runs)
    critical = trail.critical + unattributed_critical
    if critical:
        blocked.append(f"{critical} critical finding{'s' * (critical > 1)} over {over}")
    elif trail.runs:
        fine.append("no critical finding")
    if following is not None and following.mode == "shadow":
        fine.insert(0, "shadow mode only plans: customers see no change")
    elif following is not None and following.rollout == 1 and at <= 1:
        _judge_shadow(trail, t, over, blocked, held, fine)
    else:
        success = f"Temporal success {_pct(trail.temporal_success)} over {over}"
        if trail.temporal_finished < t.min_volume:
            held.append(
                f"{trail.temporal_finished} finished Temporal renewals (min {t.min_volume})"
            )
        elif trail.temporal_success is not None and trail.temporal_success < t.min_success_rate:
            blocked.insert(0, f"{success}, under the {t.min_success_rate}% minimum")
        else:
            fine.insert(0, f"{success} ({trail.temporal_finished} renewals)")
    if trail.critical_legacy:
        fine.append(f"{trail.critical_legacy} critical on legacy alone (not blocking)")
    if last and trail.runs:
        clean = f"{trail.runs} of {t.runs} clean runs at temporal 100%"
        (held if trail.runs < t.runs else fine).append(clean)
    if trail.since_change is not None and trail.runs:
        fine.append(f"judged on full runs since the flag changed at {_when(trail.since_change)}")
    done = Verdict.COMPLETE if last else Verdict.READY
    verdict = Verdict.BLOCKED if blocked else Verdict.HOLD if held else done
    reasons = tuple(blocked + held + fine) if verdict not in (Verdict.READY, done) else tuple(fine)
    checklist = retirement_checklist(trail.tld) if verdict == Verdict.COMPLETE else ()
    return Readiness(
        trail.tld, verdict, current, following.label if following else None, reasons, checklist
    )


def _judge_shadow(
    trail: Trail,
    t: Thresholds,
    over: str,
    blocked: list[str],
    held: list[str],
    fine: list[str],
) -> None:
    """shadow → temporal 1%: the plans must agree with legacy; mismatches within the measured
    noise of the comparator (two plans of one renewal disagreeing) never block."""
    credited = trail.aa_compared >= t.min_aa_pairs  # fewer pairs measure no noise
    noise = (trail.noise or 0.0) if credited else 0.0
    allowed = (100.0 - t.min_shadow_match) + noise
    mismatch = 100.0 - (trail.shadow_match or 0.0)
    match = f"shadow match {_pct(trail.shadow_match)} over {over}"
    if trail.aa_compared and credited:
        match += f" (noise {_pct(trail.noise)} over {trail.aa_compared} A/A pairs)"
    elif trail.aa_compared:
        match += (
            f" (noise {_pct(trail.noise)} not credited: {trail.aa_compared} A/A pairs, "
            f"min {t.min_aa_pairs})"
        )
    if trail.shadow_compared < t.min_volume:
        held.append(f"{trail.shadow_compared} shadow comparisons (min {t.min_volume})")
    elif mismatch > allowed + 1e-9:
        limit = f"{t.min_shadow_match}% minimum" + (f" less {noise:.2f}% noise" if noise else "")
        blocked.insert(0, f"{match}, under the {limit}")
    else:
        fine.insert(0, match)


def retirement_checklist(tld: str) -> tuple[str, ...]:
    """What retiring the legacy engine for a complete TLD takes (shown with the verdict)."""
    return (
        f"let every legacy operation of .{tld} still open finish, or requeue and drain it "
        f"(`dualrun relaunch --tld {tld} --status stuck`)",
        f"keep the .{tld} flag at temporal 100%: the kill switch (`dualrun flags off`) still "
        "sends new renewals to legacy, so legacy must run until the flag is retired",
        "export the flags as the router's bootstrap file (`dualrun flags export --output ...`)",
        f"after a full month at 100% with the guard quiet (`dualrun rollout status`), remove "
        f".{tld} from the legacy robots' scope and archive its legacy tasks",
    )
