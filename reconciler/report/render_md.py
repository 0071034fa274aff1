"""The report as Markdown, for chat and mail. Every value from data goes through `md`: Markdown
punctuation backslash-escaped, angle brackets and ampersands as entities, lines joined."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from reconciler.report.charts import secs
from reconciler.report.document import Report
from reconciler.report.model import SEVERITIES

_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
VERDICT_MARK = {"ready": "🟢", "hold": "🟡", "blocked": "🔴", "complete": "✅"}


def md(value: object) -> str:
    """Safe inline Markdown text (table cells included) for any value."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return lines


ENGINE_HEADER = ("TLD", "engine", "total", "done", "failed", "cancelled", "open", "success",
                 "transient failures", "p50", "p95", "p99", "findings")  # fmt: skip


def engine_rows(report: Report) -> Iterable[Sequence[object]]:
    """One row per TLD and engine, the same in every format."""
    for e in report.figures.engines:
        yield (f".{e.tld}", e.engine, e.total, e.done, e.failed, e.cancelled, e.open,
               pct(e.success_rate), f"{e.transient} ({pct(e.transient_rate)})",
               secs(e.durations.p50), secs(e.durations.p95), secs(e.durations.p99),
               ", ".join(f"{k} {n}" for k, n in sorted(e.findings.items())))  # fmt: skip


SHADOW_HEADER = ("TLD", "agree + mismatch", "business mismatch", "match", "not comparable",
                 "plan transient failures", "pending", "A/A pairs", "noise")  # fmt: skip


def shadow_rows(report: Report) -> Iterable[Sequence[object]]:
    """One row per TLD: the plans against legacy, and the A/A sample (the comparator's noise);
    not comparable ones (a transient failure on either side) are shown, never counted as
    disagreement."""
    for s in report.figures.shadow:
        yield (f".{s.tld}", s.compared, s.mismatched, pct(s.match_rate), s.not_comparable,
               f"{s.plan_failed} ({pct(s.plan_failure_rate)})", s.pending, s.aa_compared,
               pct(s.noise_rate))  # fmt: skip


ROLLOUT_HEADER = ("when", "TLD", "action", "from", "to", "verdict", "by", "why")


def rollout_rows(report: Report) -> Iterable[Sequence[object]]:
    for e in report.figures.rollouts:
        yield (f"{e.at:%Y-%m-%d %H:%M}", f".{e.tld}", e.action + (" (forced)" if e.forced else ""),
               e.from_label, e.to_label, e.verdict or "-", e.actor, e.why)  # fmt: skip


def _run_line(report: Report) -> str:
    run = report.figures.run
    parts = [
        f"window {run.since.isoformat()} → {run.until.isoformat()}",
        f"status {run.status}",
        f"{run.operations if run.operations is not None else '-'} operations",
        f"{report.figures.findings_total} findings ({run.new_findings or 0} new)",
    ]
    return md(" · ".join(parts))


def render_md(report: Report) -> str:
    f = report.figures
    run = f.run
    out = [f"# Reconciliation report: run {run.run_id} ({md(run.kind)})", "", _run_line(report)]
    if run.error:
        out += ["", f"**Run error:** {md(run.error)}"]
    if not run.full:
        out += ["", "_A sweep checks duplicates and double charges only._"]
    if run.unchecked_note:
        out += ["", f"**Incomplete:** {md(run.unchecked_note)}."]
    out += ["", "## Readiness for the next flag step", ""]
    for r in report.readiness:
        out.append(f"- {VERDICT_MARK[r.verdict.value]} **.{md(r.tld)}**: {md(r.line)}")
        out += [f"  - [ ] {md(item)}" for item in r.checklist]
    out += ["", "## Flag state", ""]
    if report.flags.available:
        state = "enabled" if report.flags.enabled else "OFF (every new renewal goes to legacy)"
        out.append(md(f"source {report.flags.source}, {state}. {report.flags.detail}".strip()))
        out.append("")
        out += table(
            ("TLD", "mode", "rollout"),
            ((f".{r.tld}", r.mode, "-" if r.rollout is None else f"{r.rollout}%")
             for r in report.flags.rows),
        )  # fmt: skip
    else:
        out.append(md(report.flags.detail or "flag state unavailable"))
    out += ["", "## Per TLD and engine", ""]
    out += table(ENGINE_HEADER, engine_rows(report))
    out += ["", "## Shadow comparisons", ""]
    if f.shadow:
        out += table(SHADOW_HEADER, shadow_rows(report))
    else:
        out.append("No legacy operation of the window was routed in shadow mode.")
    out += ["", "## Rollout history", ""]
    if f.rollouts:
        out += table(ROLLOUT_HEADER, rollout_rows(report))
    else:
        out.append("No flag change recorded.")
    out += ["", "## Findings by kind", ""]
    if f.by_kind:
        out += table(("kind", "count"), sorted(f.by_kind.items()))
    else:
        out.append("No finding.")
    out += ["", f"## Last {len(f.history)} full runs", ""]
    tlds = sorted({t for p in f.history for t in p.shadow})
    out += table(
        ("run", "day", *SEVERITIES, *(f"shadow .{t}" for t in tlds)),
        ((p.run_id, f"{p.since:%Y-%m-%d}", *(p.findings.get(s, 0) for s in SEVERITIES),
          *(pct(p.shadow[t].match_rate) if t in p.shadow else "-" for t in tlds))
         for p in f.history),
    )  # fmt: skip
    if f.findings:
        shown = len(f.findings)
        out += ["", f"## Findings ({shown} of {f.findings_total})", ""]
        out += table(
            ("severity", "kind", "TLD", "engine", "summary", "key", "new"),
            ((x.severity, x.kind, x.tld or "-", x.engine or "-", x.summary,
              x.idempotency_key or x.key, "new" if x.new else "")
             for x in f.findings),
        )  # fmt: skip
    t = report.thresholds
    out += [
        "",
        md(
            f"Thresholds: shadow match ≥ {t.min_shadow_match}%, Temporal success ≥ "
            f"{t.min_success_rate}%, volume ≥ {t.min_volume}, no critical finding over the "
            f"last {t.runs} full runs since each TLD's last flag change (complete: {t.runs} "
            f"clean ones at temporal 100%), A/A noise credited over ≥ {t.min_aa_pairs} pairs. "
            f"Generated {report.generated_at.isoformat()}."
        ),
        "",
    ]
    return "\n".join(out)
