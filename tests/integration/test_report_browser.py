"""The HTML report in headless Chromium (Debian's `chromium`): offline, charts rendered with the
run's numbers, markup in the data shown as text, findings linked to their Temporal workflows."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.harness import Cli, cli_runner
from tests.integration.test_report import report_env
from tests.report_seed import HOSTILE_TLD, Seeded, seed

pytestmark = pytest.mark.integration

UI, NAMESPACE = "https://temporal.example.test/ui", "renewals-prod"

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "headless Chromium is needed: apt-get install -y chromium"
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


class Dom(HTMLParser):
    """Elements (tag, attributes) and the text of the dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


@pytest.fixture
def page(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Seeded]:
    """The seeded run's HTML report, written by `dualrun report --output`."""
    seeded = seed(db_dsn)
    env = {**report_env(db_dsn, tmp_path), "DUALRUN_TEMPORAL_UI_URL": UI,
           "DUALRUN_TEMPORAL_NAMESPACE": NAMESPACE}  # fmt: skip
    cli: Cli = cli_runner(env, monkeypatch, capsys)
    target = tmp_path / "report.html"
    code, _, err = cli("report", "--run", str(seeded.run_id), "--format", "html",
                       "--output", str(target))  # fmt: skip
    assert code == 0, err
    return target, seeded


def test_chromium_renders_charts_with_the_numbers(
    page: tuple[Path, Seeded], tmp_path: Path
) -> None:
    """The dumped DOM has the three SVG charts, their figures and the verdict cards."""
    path, seeded = page
    dom_text = chromium(tmp_path, "--dump-dom", path.as_uri()).stdout
    dom = Dom()
    dom.feed(dom_text)
    text = " ".join(dom.text)
    assert len(dom.having("svg", **{"class": "chart"})) == 3
    boxes = [(g["data-tld"], g["data-engine"]) for g in dom.having("g", **{"class": "duration"})]
    assert boxes == [(HOSTILE_TLD, "legacy"), ("de", "legacy"), ("fr", "legacy"),
                     ("fr", "temporal"), ("info", "legacy"), ("info", "temporal")]  # fmt: skip
    assert "p50 25.00 s · p95 38.50 s · p99 39.70 s · n=4" in text
    assert ".fr legacy: 4 finished, p50 25.00 s, p95 38.50 s, p99 39.70 s" in text
    totals = [g["data-total"] for g in dom.having("g", **{"class": "run-findings"})]
    assert totals == ["0", "1", "4"]
    assert f"run {seeded.run_id}: 1 critical" in text
    assert f"run {seeded.run_id} .de: 75.00% match (3 of 4)" in text
    assert f"run {seeded.previous[1]} .de: 90.00% match (9 of 10)" in text
    assert ".de 75.00%" in text and "min 99.5%" in text
    cards = {a["data-tld"]: a["data-verdict"] for _, a in dom.elements if "data-verdict" in a}
    assert cards == {"com": "ready", "de": "blocked", "eu": "ready", "fr": "hold",
                     "info": "blocked"}  # fmt: skip
    assert (
        "shadow match 91.67% over the last 3 runs (noise 0.00% not credited: 1 A/A pairs,"
        " min 100), under the 99.5% minimum" in text
    )


def test_chromium_shows_markup_in_data_as_text(page: tuple[Path, Seeded], tmp_path: Path) -> None:
    """A domain `<img src=x onerror=alert(1)>` is text in the DOM: no element, no handler."""
    path, _ = page
    dom_text = chromium(tmp_path, "--dump-dom", path.as_uri()).stdout
    dom = Dom()
    dom.feed(dom_text)
    assert "2 operations share <img src=x onerror=alert(1)>.fr" in " ".join(dom.text)
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom_text
    assert not dom.having("img") and not dom.having("script")
    assert not [k for _, attrs in dom.elements for k in attrs if k.startswith("on")]
    assert ".<svg onload=alert(2)> legacy: 1 finished" in " ".join(dom.text)  # a hostile TLD


def test_chromium_screenshot(page: tuple[Path, Seeded], tmp_path: Path) -> None:
    """A full-page screenshot renders (looked at by eye when the report changes)."""
    path, _ = page
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", path.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000


def test_chromium_links_temporal_findings_to_their_workflows(
    page: tuple[Path, Seeded], tmp_path: Path
) -> None:
    """Findings on Temporal renewals (and a shadow plan) link to the workflow in the Web UI at
    DUALRUN_TEMPORAL_UI_URL, id URL-encoded; a finding on legacy alone has no link."""
    path, _ = page
    dom = Dom()
    dom.feed(chromium(tmp_path, "--dump-dom", path.as_uri()).stdout)
    base = f"{UI}/namespaces/{NAMESPACE}/workflows/"
    links = {a["data-workflow-id"]: a["href"] for a in dom.having("a", **{"class": "workflow"})}
    assert links == {
        "renew:i0.info:2027-01-01": f"{base}renew%3Ai0.info%3A2027-01-01",  # legacy,temporal
        "renew:t2.fr:2027-01-01": f"{base}renew%3At2.fr%3A2027-01-01",  # stuck on Temporal
        "wf-s0.de": f"{base}wf-s0.de",  # the shadow plan of a shadow mismatch
    }
    assert len(dom.having("a")) == 3  # the duplicate on legacy alone links nowhere
