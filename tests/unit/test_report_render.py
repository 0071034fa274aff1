"""Rendering: hostile strings escaped in Markdown, HTML and SVG; the charts carry the figures."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser

from reconciler.report import charts
from reconciler.report.build import render
from reconciler.report.document import Report
from reconciler.report.model import (
    Durations,
    EngineFigures,
    Figures,
    FindingRow,
    FlagInfo,
    FlagRow,
    HistoryPoint,
    RunInfo,
    ShadowFigures,
    Trail,
)
from reconciler.report.render_md import md
from reconciler.report.verdict import Thresholds, decide
from renewals.links import WorkflowLinks

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
XSS = "<img src=x onerror=alert(1)>"
ATTR = '"><script>alert(2)</script>'
MD_HOSTILE = "a|b `code` <b>x</b> [link](http://evil) *bold*"


def sample() -> Report:
    run = RunInfo(7, "nightly", "ok", T0, T0 + dt.timedelta(days=1), T0, T0, 12,
                  {"duplicate_operation": 1}, 1, f"boom {XSS}")  # fmt: skip
    engines = (
        EngineFigures("fr", "legacy", 4, 3, 1, 0, 0,
                      Durations(4, 10.0, 17.5, 25.0, 32.5, 38.5, 39.7, 40.0),
                      {"duplicate_operation": 1}),
        EngineFigures("fr", "temporal", 2, 2, 0, 0, 0,
                      Durations(2, 2.0, 2.5, 3.0, 3.5, 3.9, 3.98, 4.0)),
        EngineFigures(ATTR, "legacy", 1, 1, durations=Durations(1, *[7.0] * 7)),
    )  # fmt: skip
    history = tuple(
        HistoryPoint(5 + i, "nightly", T0 - dt.timedelta(days=2 - i), T0,
                     {"critical": i, "warning": 2, "info": 1},
                     {"fr": ShadowFigures("fr", 200, i), XSS: ShadowFigures(XSS, 10, 1)})
        for i in range(3)
    )  # fmt: skip
    findings = (
        FindingRow("k1", "duplicate_operation", "warning", "fr", "legacy", f"2 share {XSS}",
                   f"renew:{XSS}:2027-01-01", ("op-1",), True),
        FindingRow("k2", "stuck_operation", "warning", "fr", ATTR, MD_HOSTILE, None, (), False),
    )  # fmt: skip
    figures = Figures(run, engines, (ShadowFigures("fr", 200, 2, 1),), findings,
                      {"duplicate_operation": 1, "stuck_operation": 1}, {"warning": 2},
                      history, (Trail("fr", 3, 2, 0, 600, 3),))  # fmt: skip
    flags = FlagInfo(True, "bootstrap", True, f"detail {XSS}", (FlagRow("fr", "shadow", 100),))
    t = Thresholds(min_volume=100)
    readiness = (decide(figures.trail_of("fr"), flags.row("fr"), t),)
    return Report(figures, flags, readiness, t, T0)


class Elements(HTMLParser):
    """The tags and attributes of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]


def test_html_escapes_every_hostile_value() -> None:
    """Markup in domains, engines, summaries and errors is text: no element, no handler."""
    page = render(sample(), "html")
    parsed = Elements()
    parsed.feed(page)
    assert "img" not in parsed.tags and "script" not in parsed.tags
    assert not [a for a in parsed.attrs if a.startswith("on")]
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert XSS not in page and "<script" not in page


def test_html_is_self_contained() -> None:
    """No external asset: no src/href/link/script, a CSP that forbids loading anything."""
    page = render(sample(), "html")
    parsed = Elements()
    parsed.feed(page)
    assert not {"src", "href"} & set(parsed.attrs)
    assert not {"link", "script", "img", "iframe", "object"} & set(parsed.tags)
    assert "@import" not in page and "url(" not in page
    assert 'content="default-src &#x27;none&#x27;; style-src' in page
    assert page.count("<svg") == 3


def test_markdown_escapes_table_cells() -> None:
    """Pipes, backticks, brackets and angle brackets cannot break a row or add markup."""
    text = render(sample(), "md")
    row = next(line for line in text.splitlines() if "code" in line and line.startswith("|"))
    assert row.count("|") - row.count("\\|") == 8  # seven cells
    assert "a\\|b \\`code\\` &lt;b&gt;x&lt;/b&gt; \\[link\\](http://evil) \\*bold\\*" in row
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert md("a\nb\r\nc | d") == "a b c \\| d"


def test_json_keeps_values_as_they_are() -> None:
    """JSON is data: the raw strings, figures per TLD and engine, verdicts."""
    doc = json.loads(render(sample(), "json"))
    fr = doc["tlds"]["fr"]
    assert fr["engines"]["legacy"]["durations_s"]["p95"] == 38.5
    assert fr["engines"]["legacy"]["success_rate"] == 75.0
    assert fr["shadow"]["match_rate"] == 99.0
    assert fr["readiness"]["verdict"] == "ready" and fr["readiness"]["next"] == "temporal 1%"
    assert doc["findings"][0]["summary"] == f"2 share {XSS}"


def test_duration_chart_shows_the_percentiles() -> None:
    """The box plot prints p50/p95/p99 per TLD and engine and titles each box with them."""
    svg = charts.durations(sample().figures.engines)
    root = ET.fromstring(svg)  # well-formed: every value escaped, attributes included
    ns = {"s": "http://www.w3.org/2000/svg"}
    titles = [t.text or "" for t in root.iterfind(".//s:g/s:title", ns)]
    assert ".fr legacy: 4 finished, p50 25.00 s, p95 38.50 s, p99 39.70 s" in titles[0]
    assert "p50 3.00 s · p95 3.90 s · p99 3.98 s · n=2" in svg
    boxes = root.findall(".//s:g[@class='duration']", ns)
    assert [b.get("data-p50") for b in boxes[:2]] == ["25.0", "3.0"]
    assert boxes[2].get("data-tld") == ATTR  # the attribute holds the text, escaped
    assert "&quot;&gt;&lt;script&gt;" in svg


def test_findings_and_shadow_charts_show_the_values() -> None:
    """Findings bars print each run's total; the shadow line titles every point with its rate."""
    history = sample().figures.history
    bars = ET.fromstring(charts.findings(history))
    ns = {"s": "http://www.w3.org/2000/svg"}
    totals = [g.get("data-total") for g in bars.iterfind(".//s:g[@class='run-findings']", ns)]
    assert totals == ["3", "4", "5"]
    assert "run 7: 2 critical" in [t.text for t in bars.iterfind(".//s:rect/s:title", ns)]
    line = charts.shadow(history, 99.5)
    root = ET.fromstring(line)
    tips = [t.text or "" for t in root.iterfind(".//s:circle/s:title", ns)]
    assert "run 5 .fr: 100.00% match (200 of 200)" in tips
    assert "run 7 .fr: 99.00% match (198 of 200)" in tips
    assert ".fr 99.00%" in line and "min 99.5%" in line


def test_charts_without_data_say_so() -> None:
    """No run, no finished operation, no shadow plan: a line of text, not an empty frame."""
    assert "no finished operation" in charts.durations([EngineFigures("fr", "legacy", 1)])
    assert "no full reconciliation run yet" in charts.findings([])
    assert "no shadow comparison" in charts.shadow([], 99.5)


def test_html_links_temporal_findings_to_their_workflow() -> None:
    """With a Web UI, a finding on a Temporal workflow links to it (id URL-encoded); others not."""
    base = sample()
    on_temporal = FindingRow("k3", "stuck_operation", "warning", "fr", "temporal", "stuck",
                             "renew:t.fr:2027-01-01", ("op-3",), True,
                             f"renew:{XSS}:2027-01-01")  # fmt: skip
    figures = replace(base.figures, findings=(*base.figures.findings, on_temporal))
    links = WorkflowLinks("https://temporal.example/ui/", "prod")
    page = render(replace(base, figures=figures, links=links), "html")
    parsed = Anchors()
    parsed.feed(page)
    wanted = ("https://temporal.example/ui/namespaces/prod/workflows/"
              "renew%3A%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%3A2027-01-01")  # fmt: skip
    assert parsed.hrefs == [wanted]
    assert XSS not in page
    doc = json.loads(render(replace(base, figures=figures, links=links), "json"))
    assert [f["workflow_url"] for f in doc["findings"]] == [None, None, wanted]
    assert Anchors.of(render(replace(base, figures=figures), "html")) == []  # no UI, no link


class Anchors(HTMLParser):
    """The href of every <a> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href"))

    @classmethod
    def of(cls, page: str) -> list[str | None]:
        parsed = cls()
        parsed.feed(page)
        return parsed.hrefs
