"""A small inline SVG line chart for bench/RESULTS.md: one or more series over the same x."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def line_chart(
    title: str,
    xs: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 260,
) -> str:
    """The chart as one `<svg>` element (x spaced by rank: the sizes are few and far apart)."""
    left, right, top, bottom = 60, 150, 30, 45
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max(max(v) for v in series.values()) * 1.15 or 1.0

    def px(i: int) -> float:
        return left + (plot_w * i / max(1, len(xs) - 1))

    def py(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16" font-size="13">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>",
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>',
    ]
    for k in range(5):
        v = y_max * k / 4
        parts.append(
            f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>'
            f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + plot_w}" y2="{py(v):.1f}" '
            'stroke="#ddd"/>'
        )
    for i, x in enumerate(xs):
        parts.append(
            f'<text x="{px(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{x:,.0f}</text>'
        )
    for n, (name, values) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        for i, v in enumerate(values):
            parts.append(
                f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}: {v:.3g}</title></circle>"
            )
        y = top + 14 + 16 * n
        parts.append(
            f'<line x1="{left + plot_w + 12}" y1="{y - 4}" x2="{left + plot_w + 28}" '
            f'y2="{y - 4}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{left + plot_w + 32}" y="{y}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
