"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no
external asset (opens offline; its Content-Security-Policy forbids loading anything). Every
value from data goes through `esc`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reconciler.report import charts
from reconciler.report.charts import esc
from reconciler.report.document import Report
from reconciler.report.model import SEVERITIES, FindingRow
from reconciler.report.render_md import (
    ENGINE_HEADER,
    ROLLOUT_HEADER,
    SHADOW_HEADER,
    engine_rows,
    rollout_rows,
    shadow_rows,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root{--ready:#15803d;--hold:#b45309;--blocked:#b91c1c;--complete:#1d4ed8;--muted:#6b7280;
--line:#e5e7eb}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;
margin:0;background:#f9fafb}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}
.meta{color:var(--muted);margin:0}.error{color:var(--blocked);font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px}
.card{background:#fff;border:1px solid var(--line);border-left:6px solid var(--muted);
border-radius:8px;padding:10px 12px}
.card.ready{border-left-color:var(--ready)}.card.hold{border-left-color:var(--hold)}
.card.blocked{border-left-color:var(--blocked)}.card.complete{border-left-color:var(--complete)}
.complete .verdict{color:var(--complete)}.card ul.checklist{list-style:"☐ "}
.card .tld{font-size:18px;font-weight:700}.card .verdict{font-weight:700;text-transform:uppercase}
.ready .verdict{color:var(--ready)}.hold .verdict{color:var(--hold)}
.blocked .verdict{color:var(--blocked)}
.card .step{color:var(--muted)}.card ul{margin:6px 0 0;padding-left:18px}
figure{background:#fff;border:1px solid var(--line);border-radius:8px;margin:0 0 14px;
padding:10px}
figcaption{font-weight:600;margin-bottom:4px}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:8px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.summary{word-break:break-word}
table.engines td,table.shadow td,table.history td{white-space:nowrap}
table.engines td:last-child{white-space:normal}
.sev-critical{color:var(--blocked);font-weight:600}.sev-warning{color:var(--hold)}
svg text{font:12px system-ui,sans-serif;fill:#374151}
svg .axis{fill:var(--muted)}svg .value{font-weight:600}svg .muted,svg .empty{fill:var(--muted)}
svg .grid{stroke:var(--line)}svg .threshold{stroke:var(--blocked);stroke-dasharray:5 4}
svg .threshold-label{fill:var(--blocked)}
footer{color:var(--muted);margin-top:24px}
"""


def _cell(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{esc(value)}</td>'
    return f"<td>{esc(value)}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{esc(caption)}</figcaption>{svg}</figure>"


def _readiness(report: Report) -> str:
    cards = []
    for r in report.readiness:
        step = f"{r.current or '?'} → {r.next}" if r.next else (r.current or "")
        reasons = "".join(f"<li>{esc(x)}</li>" for x in r.reasons)
        checklist = "".join(f"<li>{esc(x)}</li>" for x in r.checklist)
        retire = (
            f'<p class="meta">Legacy can be retired for .{esc(r.tld)}:</p>'
            f'<ul class="checklist">{checklist}</ul>'
            if checklist
            else ""
        )
        cards.append(
            f'<div class="card {esc(r.verdict.value)}" data-tld="{esc(r.tld)}" '
            f'data-verdict="{esc(r.verdict.value)}"><div class="tld">.{esc(r.tld)}</div>'
            f'<div class="verdict">{esc(r.verdict.value)}</div>'
            f'<div class="step">{esc(step)}</div><ul>{reasons}</ul>{retire}</div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _flags(report: Report) -> str:
    flags = report.flags
    if not flags.available:
        return f'<p class="error">{esc(flags.detail or "flag state unavailable")}</p>'
    state = "enabled" if flags.enabled else "OFF: every new renewal goes to legacy"
    rows = (
        (f".{r.tld}", r.mode, "-" if r.rollout is None else f"{r.rollout}%") for r in flags.rows
    )
    note = f"source {flags.source}, {state}. {flags.detail}".strip()
    return f'<p class="meta">{esc(note)}</p>' + table(("TLD", "mode", "rollout"), rows)


def _workflow_link(report: Report, row: FindingRow) -> str:
    """A link to the finding's workflow in the Temporal Web UI, when there is one."""
    url = report.workflow_url(row)
    if url is None:
        return ""
    return (
        f'<a class="workflow" href="{esc(url)}" data-workflow-id="{esc(row.workflow_id)}" '
        f'rel="noopener noreferrer">workflow</a>'
    )


def _findings(report: Report) -> str:
    f = report.figures
    if not f.by_kind:
        return "<p>No finding.</p>"
    out = table(("kind", "count"), sorted(f.by_kind.items()))
    rows = []
    for x in f.findings:
        rows.append(
            f'<tr><td class="sev-{esc(x.severity)}">{esc(x.severity)}</td><td>{esc(x.kind)}</td>'
            f"<td>{esc(x.tld or '-')}</td><td>{esc(x.engine or '-')}</td>"
            f'<td class="summary">{esc(x.summary)}</td>'
            f"<td>{esc(x.idempotency_key or x.key)}</td><td>{'new' if x.new else ''}</td>"
            f"<td>{_workflow_link(report, x)}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("severity", "kind", "TLD", "engine", "summary", "key", "new", "Temporal")
    )
    shown = f"{len(f.findings)} of {f.findings_total}"
    return (
        f"{out}<h3>Findings ({esc(shown)})</h3>"
        f'<table class="findings"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_html(report: Report) -> str:
    f = report.figures
    run = f.run
    t = report.thresholds
    meta = (
        f"window {run.since.isoformat()} → {run.until.isoformat()} · status {run.status} · "
        f"{run.operations if run.operations is not None else '-'} operations · "
        f"{f.findings_total} findings ({run.new_findings or 0} new)"
    )
    engines = table(ENGINE_HEADER, engine_rows(report), "engines")
    shadow = (
        table(SHADOW_HEADER, shadow_rows(report), "shadow")
        if f.shadow
        else "<p>No legacy operation of the window was routed in shadow mode.</p>"
    )
    rollouts = (
        table(ROLLOUT_HEADER, rollout_rows(report), "rollouts")
        if f.rollouts
        else "<p>No flag change recorded.</p>"
    )
    trend = table(
        ("run", "day", *SEVERITIES),
        ((p.run_id, f"{p.since:%Y-%m-%d}", *(p.findings.get(s, 0) for s in SEVERITIES))
         for p in f.history),
        "history",
    )  # fmt: skip
    notes = []
    if run.error:
        notes.append(f'<p class="error">Run error: {esc(run.error)}</p>')
    if not run.full:
        notes.append('<p class="meta">A sweep checks duplicates and double charges only.</p>')
    if run.unchecked_note:
        notes.append(f'<p class="error">Incomplete: {esc(run.unchecked_note)}.</p>')
    footer = (
        f"Thresholds: shadow match ≥ {t.min_shadow_match}%, Temporal success ≥ "
        f"{t.min_success_rate}%, volume ≥ {t.min_volume}, no critical finding over the last "
        f"{t.runs} full runs since each TLD's last flag change (complete: {t.runs} clean ones "
        f"at temporal 100%), A/A noise credited over ≥ {t.min_aa_pairs} pairs. "
        "Flag state as read when generated, "
        f"{report.generated_at.isoformat()}."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dualrun reconciliation run {run.run_id}</title><style>{_CSS}</style></head>
<body><main>
<header><h1>Reconciliation run {run.run_id} <small>({esc(run.kind)})</small></h1>
<p class="meta">{esc(meta)}</p>{"".join(notes)}</header>
<section id="readiness"><h2>Readiness for the next flag step</h2>{_readiness(report)}</section>
<section id="charts"><h2>Charts</h2>
{
        _figure(
            "Duration of finished operations (box p25 to p75, bar p50, whisker to p95, dot p99)",
            charts.durations(f.engines),
        )
    }
{_figure(f"Findings over the last {len(f.history)} full runs", charts.findings(f.history))}
{_figure("Shadow match rate over the last full runs", charts.shadow(f.history, t.min_shadow_match))}
</section>
<section id="figures"><h2>Per TLD and engine</h2>{engines}</section>
<section id="shadow"><h2>Shadow comparisons</h2>{shadow}</section>
<section id="flags"><h2>Flag state</h2>{_flags(report)}</section>
<section id="rollouts"><h2>Rollout history</h2>{rollouts}</section>
<section id="findings"><h2>Findings by kind</h2>{_findings(report)}</section>
<section id="trend"><h2>Last full runs</h2>{trend}</section>
<footer>{esc(footer)}</footer>
</main></body></html>
"""
