"""The readiness verdict: the flag ladder, each rule, the thresholds and their overrides."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from reconciler.report.model import FlagRow, Trail
from reconciler.report.verdict import LADDER, Thresholds, Verdict, decide, position
from renewals.errors import ConfigError
from renewals.settings import Settings

T = Thresholds(min_shadow_match=99.5, min_success_rate=98.0, min_volume=100, runs=7,
               min_aa_pairs=100)  # fmt: skip
CHANGED = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)  # the flag's last change
GOOD_SHADOW = Trail("fr", runs=7, shadow_compared=3000, shadow_mismatched=1)
GOOD_TEMPORAL = Trail("fr", runs=7, temporal_done=995, temporal_failed=5)


def flag(mode: str, rollout: int | None = 100) -> FlagRow:
    return FlagRow("fr", mode, rollout)


CASES = [
    # (name, trail, flag, kwargs, verdict, next step, a reason that must be there)
    ("legacy goes to shadow", Trail("fr", runs=7), flag("legacy", None), {},
     Verdict.READY, "shadow", "customers see no change"),
    ("shadow agreeing enough", GOOD_SHADOW, flag("shadow"), {},
     Verdict.READY, "temporal 1%", "shadow match 99.97% over the last 7 runs"),
    ("shadow disagreeing", Trail("fr", 7, shadow_compared=1000, shadow_mismatched=6),
     flag("shadow"), {}, Verdict.BLOCKED, "temporal 1%", "99.40%"),
    ("too few shadow comparisons", Trail("fr", 7, shadow_compared=99), flag("shadow"), {},
     Verdict.HOLD, "temporal 1%", "99 shadow comparisons (min 100)"),
    ("temporal 1% healthy", GOOD_TEMPORAL, flag("temporal", 1), {},
     Verdict.READY, "temporal 5%", "Temporal success 99.50%"),
    ("temporal 25% healthy", GOOD_TEMPORAL, flag("temporal", 25), {},
     Verdict.READY, "temporal 50%", "1000 renewals"),
    ("between rungs goes to the next one", GOOD_TEMPORAL, flag("temporal", 10), {},
     Verdict.READY, "temporal 25%", "no critical finding"),
    ("temporal failing too often", Trail("fr", 7, temporal_done=900, temporal_failed=100),
     flag("temporal", 5), {}, Verdict.BLOCKED, "temporal 25%", "under the 98.0% minimum"),
    ("too few temporal renewals", Trail("fr", 7, temporal_done=50), flag("temporal", 5), {},
     Verdict.HOLD, "temporal 25%", "50 finished Temporal renewals (min 100)"),
    ("a temporal critical finding blocks", Trail("fr", 7, 995, 5, critical=1),
     flag("temporal", 50), {}, Verdict.BLOCKED, "temporal 100%", "1 critical finding over"),
    ("legacy's own criticals do not block", Trail("fr", 7, 995, 5, critical_legacy=3),
     flag("temporal", 50), {}, Verdict.READY, "temporal 100%", "3 critical on legacy alone"),
    ("a critical finding without TLD blocks all", GOOD_SHADOW, flag("shadow"),
     {"unattributed_critical": 2}, Verdict.BLOCKED, "temporal 1%", "2 critical findings"),
    ("blocked beats hold", Trail("fr", 7, temporal_done=10, critical=1), flag("temporal", 5),
     {}, Verdict.BLOCKED, "temporal 25%", "10 finished Temporal renewals"),
    ("a failed run holds", GOOD_TEMPORAL, flag("temporal", 5), {"run_ok": False},
     Verdict.HOLD, "temporal 25%", "this run did not finish ok"),
    ("no run to judge on", Trail("fr", runs=0), flag("shadow"), {},
     Verdict.HOLD, "temporal 1%", "no full reconciliation run"),
    ("flag state unreadable", GOOD_TEMPORAL, None, {},
     Verdict.HOLD, None, "flag state unavailable"),
    ("top of the ladder, clean: complete", GOOD_TEMPORAL, flag("temporal", 100), {},
     Verdict.COMPLETE, None, "Temporal success 99.50%"),
    ("top of the ladder, too few renewals", Trail("fr", 7, temporal_done=50),
     flag("temporal", 100), {}, Verdict.HOLD, None, "50 finished Temporal renewals"),
    ("top of the ladder, a critical finding", Trail("fr", 7, 995, 5, critical=1),
     flag("temporal", 100), {}, Verdict.BLOCKED, None, "1 critical finding over"),
    ("shadow mismatches within the measured noise",
     Trail("fr", 7, shadow_compared=1000, shadow_mismatched=8, aa_compared=200,
           aa_mismatched=1), flag("shadow"), {}, Verdict.READY, "temporal 1%",
     "noise 0.50% over 200 A/A pairs"),
    ("too few A/A pairs: their noise is not credited",
     Trail("fr", 7, shadow_compared=1000, shadow_mismatched=8, aa_compared=4,
           aa_mismatched=1), flag("shadow"), {}, Verdict.BLOCKED, "temporal 1%",
     "noise 25.00% not credited: 4 A/A pairs, min 100"),
    ("one clean run at 100% is not complete", Trail("fr", 1, 995, 5), flag("temporal", 100),
     {}, Verdict.HOLD, None, "1 of 7 clean runs at temporal 100%"),
    ("N clean runs at 100% are", GOOD_TEMPORAL, flag("temporal", 100), {},
     Verdict.COMPLETE, None, "7 of 7 clean runs at temporal 100%"),
    ("no run since the flag changed", Trail("fr", 0, since_change=CHANGED),
     flag("temporal", 5), {}, Verdict.HOLD, "temporal 25%",
     "no full reconciliation run since the flag changed at 2026-12-01 10:00:00 UTC"),
    ("the run judged on predates the change",
     dataclasses.replace(GOOD_TEMPORAL, since_change=CHANGED), flag("temporal", 5),
     {"run_start": CHANGED - dt.timedelta(hours=1)}, Verdict.HOLD, "temporal 25%",
     "this run's window starts at 2026-12-01 09:00:00 UTC"),
    ("one run after the change is enough for a step",
     Trail("fr", 1, 995, 5, since_change=CHANGED), flag("temporal", 5),
     {"run_start": CHANGED}, Verdict.READY, "temporal 25%",
     "judged on full runs since the flag changed at 2026-12-01 10:00:00 UTC"),
    ("shadow mismatches beyond the measured noise",
     Trail("fr", 7, shadow_compared=1000, shadow_mismatched=12, aa_compared=200,
           aa_mismatched=1), flag("shadow"), {}, Verdict.BLOCKED, "temporal 1%",
     "under the 99.5% minimum less 0.50% noise"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("trail", "row", "kwargs", "verdict", "following", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_verdict_rules(
    trail: Trail,
    row: FlagRow | None,
    kwargs: dict[str, object],
    verdict: Verdict,
    following: str | None,
    reason: str,
) -> None:
    """Each rule gives its verdict, the next step and a reason naming the figure."""
    got = decide(trail, row, T, **kwargs)  # type: ignore[arg-type]
    assert (got.verdict, got.next) == (verdict, following)
    assert any(reason in r for r in got.reasons), got.reasons


def test_ready_line_reads_like_the_example() -> None:
    """The one-line form: severity, reasons, arrow, target step."""
    got = decide(GOOD_SHADOW, flag("shadow"), T)
    assert got.line == (
        "info: shadow match 99.97% over the last 7 runs, no critical finding → ready for "
        "temporal 1%"
    )
    blocked = decide(Trail("fr", 7, critical=2), flag("legacy", None), T)
    assert blocked.line.startswith("critical: 2 critical findings over the last 7 runs")
    assert blocked.line.endswith("→ blocked at legacy (next: shadow)")


@pytest.mark.parametrize(
    ("mode", "rollout", "rung"),
    [("legacy", None, "legacy"), ("shadow", 30, "shadow"), ("temporal", 0, "shadow"),
     ("temporal", 1, "temporal 1%"), ("temporal", 4, "temporal 1%"),
     ("temporal", 50, "temporal 50%"), ("temporal", None, "temporal 100%")],
)  # fmt: skip
def test_ladder_position(mode: str, rollout: int | None, rung: str) -> None:
    """A flag state sits on the highest rung it has reached."""
    assert LADDER[position(mode, rollout)].label == rung


def test_thresholds_from_settings_then_options() -> None:
    """Defaults, overridden by DUALRUN_REPORT_* settings (checked), overridden by options."""
    assert Thresholds.from_settings(Settings.from_env({})) == Thresholds()
    env = {"DUALRUN_REPORT_MIN_SHADOW_MATCH": "99.9", "DUALRUN_REPORT_MIN_VOLUME": "0",
           "DUALRUN_REPORT_RUNS": "3"}  # fmt: skip
    settings = Settings.from_env(env)
    assert Thresholds.from_settings(settings) == Thresholds(99.9, 98.0, 0, 3)
    assert Thresholds.from_settings(settings, runs=14, min_volume=None) == Thresholds(
        99.9, 98.0, 0, 14
    )
    pairs = Settings.from_env({"DUALRUN_REPORT_MIN_AA_PAIRS": "40"})
    assert Thresholds.from_settings(pairs).min_aa_pairs == 40
    with pytest.raises(ConfigError, match="DUALRUN_REPORT_MIN_AA_PAIRS"):
        Settings.from_env({"DUALRUN_REPORT_MIN_AA_PAIRS": "0"})
    with pytest.raises(ConfigError, match="DUALRUN_REPORT_MIN_SUCCESS_RATE"):
        Settings.from_env({"DUALRUN_REPORT_MIN_SUCCESS_RATE": "120"})
    with pytest.raises(ConfigError, match="DUALRUN_REPORT_RUNS"):
        Settings.from_env({"DUALRUN_REPORT_RUNS": "0"})
    assert Settings.from_env({"DUALRUN_STATE_DIR": "/srv/d"}).reports_dir == Path("/srv/d/reports")


def test_complete_comes_with_a_retirement_checklist() -> None:
    """A complete TLD's verdict says legacy can be retired, with what that takes."""
    got = decide(GOOD_TEMPORAL, flag("temporal", 100), T)
    assert got.verdict == Verdict.COMPLETE and "legacy can be retired" in got.line
    assert any("flags export" in item for item in got.checklist)
    assert decide(GOOD_TEMPORAL, flag("temporal", 50), T).checklist == ()
