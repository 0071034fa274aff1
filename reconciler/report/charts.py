"""Inline SVG charts, drawn in Python (no script): durations legacy vs Temporal per TLD, findings
over the last runs, shadow match rate over the last runs.

Every mark carries its figures in a `<title>` (a tooltip in browsers) and the key numbers are
printed as text, so people and tests read the same values. Every value from data goes through
`esc` (text and attributes alike).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

from reconciler.report.model import ENGINES, EngineFigures, HistoryPoint

WIDTH = 960
COLOURS = {"legacy": "#6b7280", "temporal": "#7c3aed"}
SEVERITY_COLOURS = {"critical": "#dc2626", "warning": "#d97706", "info": "#2563eb"}
TLD_COLOURS = ("#2563eb", "#059669", "#d97706", "#db2777", "#7c3aed", "#0891b2", "#65a30d")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0 s"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    span = max(high - low, 1e-9)
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    return [round(first + i * step, 10) for i in range(math.ceil((high - first) / step) + 1)]


def clip(text: str, limit: int) -> str:
    """A label that fits its column (the whole value stays in the mark's <title>)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(height: int, label: str, body: Iterable[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{esc(label)}" class="chart">'
        f"<title>{esc(label)}</title>{''.join(body)}</svg>"
    )


def placeholder(label: str, message: str) -> str:
    return _svg(60, label, [f'<text x="12" y="36" class="empty">{esc(message)}</text>'])


def _text(x: float, y: float, value: object, cls: str = "", anchor: str = "start") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{esc(cls)}">'
        f"{esc(value)}</text>"
    )


# -- durations -------------------------------------------------------------------------------
def durations(engines: Sequence[EngineFigures]) -> str:
    """A box per TLD and engine: p25 to p75, median, whisker min to p95, a dot at p99."""
    label = "Duration of finished operations, legacy vs Temporal, per TLD"
    rows = [e for e in engines if e.engine in ENGINES]
    timed = [e.durations for e in rows if e.durations.count]
    if not timed:
        return placeholder(label, "no finished operation in the window")
    top = max((d.p99 or d.max or 0.0) for d in timed)
    scale = ticks(0.0, top if top > 0 else 1.0)
    high = scale[-1]
    x0, width, row_h = 140.0, 480.0, 26
    height = 40 + row_h * len(rows) + 12 * len({e.tld for e in rows}) + 20

    def x(v: float | None) -> float:
        return x0 + (v or 0.0) / high * width

    out = [_text(x(t), 18, secs(t), "axis", "middle") for t in scale]
    out += [
        f'<line x1="{x(t):.1f}" y1="24" x2="{x(t):.1f}" y2="{height - 10}" class="grid"/>'
        for t in scale
    ]
    y, previous = 34.0, None
    for e in rows:
        if previous is not None and e.tld != previous:
            y += 12
        previous = e.tld
        d, mid = e.durations, y + row_h / 2
        title = (
            f".{e.tld} {e.engine}: {d.count} finished, p50 {secs(d.p50)}, p95 {secs(d.p95)}, "
            f"p99 {secs(d.p99)}, min {secs(d.min)}, max {secs(d.max)}"
        )
        out.append(
            f'<g class="duration" data-tld="{esc(e.tld)}" data-engine="{esc(e.engine)}" '
            f'data-p50="{esc(d.p50)}" data-p95="{esc(d.p95)}" data-p99="{esc(d.p99)}">'
            f"<title>{esc(title)}</title>"
        )
        out.append(_text(x0 - 8, mid + 4, clip(f".{e.tld} {e.engine}", 20), "label", "end"))
        if d.count:
            colour = COLOURS.get(e.engine, "#111827")
            box_w = max(x(d.p75) - x(d.p25), 2.0)
            out += [
                f'<line x1="{x(d.min):.1f}" y1="{mid}" x2="{x(d.p95):.1f}" y2="{mid}" '
                f'stroke="{colour}" stroke-width="1.5"/>',
                f'<rect x="{x(d.p25):.1f}" y="{y + 5}" width="{box_w:.1f}" '
                f'height="{row_h - 10}" fill="{colour}" fill-opacity="0.25" stroke="{colour}"/>',
                f'<line x1="{x(d.p50):.1f}" y1="{y + 3}" x2="{x(d.p50):.1f}" '
                f'y2="{y + row_h - 3}" stroke="{colour}" stroke-width="3"/>',
                f'<circle cx="{x(d.p99):.1f}" cy="{mid}" r="3.5" fill="{colour}"/>',
                _text(
                    x0 + width + 16,
                    mid + 4,
                    f"p50 {secs(d.p50)} · p95 {secs(d.p95)} · p99 {secs(d.p99)} · n={d.count}",
                    "value",
                ),
            ]
        else:
            out.append(_text(x0 + 4, mid + 4, "no finished operation", "muted"))
        out.append("</g>")
        y += row_h
    return _svg(int(y + 16), label, out)


# -- findings over the last runs -------------------------------------------------------------
def _run_label(p: HistoryPoint) -> str:
    return f"#{p.run_id} {p.since:%m-%d}"


def findings(history: Sequence[HistoryPoint]) -> str:
    """Stacked bars per run: critical, warning, info; the total above each bar."""
    label = "Findings over the last runs, by severity"
    if not history:
        return placeholder(label, "no full reconciliation run yet")
    height, x0, y0, plot_h = 250, 60.0, 210.0, 170.0
    totals = [sum(p.findings.values()) for p in history]
    scale = ticks(0.0, max(max(totals), 1))
    high = scale[-1]
    slot = (WIDTH - x0 - 20) / len(history)
    bar = min(56.0, slot * 0.6)
    out = [_legend(list(SEVERITY_COLOURS.items()), x0, 14)]
    for t in scale:
        ty = y0 - t / high * plot_h
        out.append(f'<line x1="{x0}" y1="{ty:.1f}" x2="{WIDTH - 20}" y2="{ty:.1f}" class="grid"/>')
        out.append(_text(x0 - 6, ty + 4, f"{t:g}", "axis", "end"))
    for i, (p, total) in enumerate(zip(history, totals, strict=True)):
        left = x0 + slot * i + (slot - bar) / 2
        top = y0
        out.append(f'<g class="run-findings" data-run="{p.run_id}" data-total="{total}">')
        for severity, colour in SEVERITY_COLOURS.items():
            n = p.findings.get(severity, 0)
            if not n:
                continue
            h = n / high * plot_h
            top -= h
            out.append(
                f'<rect x="{left:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{esc(f"run {p.run_id}: {n} {severity}")}</title></rect>'
            )
        out.append(_text(left + bar / 2, top - 5, total, "value", "middle"))
        out.append(_text(left + bar / 2, y0 + 18, _run_label(p), "axis", "middle"))
        out.append("</g>")
    return _svg(height, label, out)


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for name, colour in items:
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{esc(colour)}"/>'
            + _text(x + 14, y, name, "legend")
        )
        x += 24 + 8 * len(name)
    return "".join(parts)


# -- shadow match rate over the last runs ----------------------------------------------------
def shadow(history: Sequence[HistoryPoint], minimum: float) -> str:
    """A line per TLD: the share of compared shadow plans that agreed, per run."""
    label = "Shadow match rate over the last runs, per TLD"
    tlds = sorted({t for p in history for t, s in p.shadow.items() if s.compared})
    if not tlds:
        return placeholder(label, "no shadow comparison in the last runs")
    rates = [s.match_rate for p in history for s in p.shadow.values() if s.match_rate is not None]
    low = min([*rates, minimum])
    span = 100.0 - low
    scale = ticks(max(0.0, low - max(span * 0.25, 0.5)), 100.0)
    bottom, top = scale[0], max(scale[-1], 100.0)
    height, x0, y0, plot_h = 260, 60.0, 220.0, 180.0
    slot = (WIDTH - x0 - 120) / len(history)

    def y(v: float) -> float:
        return y0 - (v - bottom) / (top - bottom) * plot_h

    colours = [(clip(f".{t}", 12), TLD_COLOURS[i % len(TLD_COLOURS)]) for i, t in enumerate(tlds)]
    out = [_legend(colours, x0, 14)]
    right = WIDTH - 120
    for t in scale:
        out.append(f'<line x1="{x0}" y1="{y(t):.1f}" x2="{right}" y2="{y(t):.1f}" class="grid"/>')
        out.append(_text(x0 - 6, y(t) + 4, f"{t:g}%", "axis", "end"))
    out.append(
        f'<line x1="{x0}" y1="{y(minimum):.1f}" x2="{right}" y2="{y(minimum):.1f}" '
        'class="threshold"/>'
        + _text(WIDTH - 116, y(minimum) + 4, f"min {minimum:g}%", "threshold-label")
    )
    for i, p in enumerate(history):
        out.append(_text(x0 + slot * (i + 0.5), y0 + 18, _run_label(p), "axis", "middle"))
    for n, tld in enumerate(tlds):
        colour = TLD_COLOURS[n % len(TLD_COLOURS)]
        points = [
            (x0 + slot * (i + 0.5), p.run_id, p.shadow[tld])
            for i, p in enumerate(history)
            if tld in p.shadow and p.shadow[tld].compared
        ]
        path = " ".join(f"{px:.1f},{y(s.match_rate or 0.0):.1f}" for px, _, s in points)
        out.append(f'<g class="shadow-line" data-tld="{esc(tld)}">')
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, run_id, s in points:
            value = s.match_rate or 0.0
            agreed = s.compared - s.mismatched
            tip = f"run {run_id} .{tld}: {value:.2f}% match ({agreed} of {s.compared})"
            out.append(
                f'<circle cx="{px:.1f}" cy="{y(value):.1f}" r="4" fill="{colour}" '
                f'data-rate="{value:.2f}"><title>{esc(tip)}</title></circle>'
            )
        last_x, _, last = points[-1]
        last_rate = last.match_rate or 0.0
        out.append(
            _text(last_x + 8, y(last_rate) - 6, f"{clip('.' + tld, 12)} {last_rate:.2f}%", "value")
        )
        out.append("</g>")
    return _svg(height, label, out)
