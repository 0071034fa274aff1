"""Reports over data inserted directly (known durations, shadow plans, findings): the figures,
`dualrun report` in every format, and the read-only `/reports` API."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dualrun.api.app import create_app
from dualrun.flags.local import SEED, LocalFlags
from dualrun.flags.model import RuleChange
from renewals.model import Mode
from renewals.settings import Settings
from tests.harness import Cli, cli_runner
from tests.report_seed import HOSTILE, HOSTILE_TLD, Seeded, seed

with warnings.catch_warnings():  # starlette deprecates its httpx-based client; it still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

RULES = [("de", Mode.SHADOW, 100), ("fr", Mode.TEMPORAL, 5), ("info", Mode.TEMPORAL, 100)]


def report_env(db_dsn: str, tmp_path: Path) -> dict[str, str]:
    """This test's schema, state dir (reports in it) and a bootstrap file with RULES."""
    boot = tmp_path / "bootstrap.json"
    boot.write_text(SEED.read_text())
    for tld, mode, rollout in RULES:
        LocalFlags(boot, "dualrun.renewals").set_rule(RuleChange(tld, mode, rollout))
    return {
        "DUALRUN_DATABASE_URL": db_dsn,
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(boot),
        "DUALRUN_TEMPORAL_ADDRESS": "127.0.0.1:9",  # reports never need Temporal
        "DUALRUN_LOG_FORMAT": "json",
        "DUALRUN_REPORT_MIN_VOLUME": "3",
    }


@pytest.fixture
def seeded(db_dsn: str) -> Seeded:
    """The runs, operations, shadow plans and findings of tests/report_seed.py."""
    return seed(db_dsn)


@pytest.fixture
def cli(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """`dualrun ARGS` in process on this test's schema and state dir."""
    return cli_runner(report_env(db_dsn, tmp_path), monkeypatch, capsys)


def test_json_figures_match_the_data(cli: Cli, seeded: Seeded) -> None:
    """Volumes, success, percentiles, findings, shadow rates, trend and verdicts per TLD."""
    code, out, err = cli("report", "--run", str(seeded.run_id), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    fr, de, info = (doc["tlds"][t] for t in ("fr", "de", "info"))
    legacy = fr["engines"]["legacy"]
    assert (legacy["total"], legacy["done"], legacy["failed"], legacy["success_rate"]) == (
        4, 3, 1, 75.0)  # fmt: skip
    assert {k: legacy["durations_s"][k] for k in ("count", "p50", "p95", "p99")} == {
        "count": 4, "p50": 25.0, "p95": 38.5, "p99": 39.7}  # fmt: skip
    assert fr["engines"]["temporal"]["open"] == 1
    assert fr["engines"]["temporal"]["durations_s"]["p50"] == 3.0
    assert fr["engines"]["legacy"]["findings"] == {"duplicate_operation": 1}
    assert fr["engines"]["temporal"]["findings"] == {"stuck_operation": 1}
    assert info["engines"]["temporal"]["durations_s"]["p95"] == 4.8
    assert info["engines"]["temporal"]["findings"] == {"double_charge": 1}
    assert de["shadow"] == {"tld": "de", "compared": 4, "mismatched": 1, "pending": 1,
                            "not_comparable": 1, "aa_compared": 1, "aa_mismatched": 0,
                            "plan_failed": 0, "match_rate": 75.0, "noise_rate": 0.0,
                            "plan_failure_rate": 0.0}  # fmt: skip
    busy = de["engines"]["legacy"]
    assert (busy["transient_failures"], busy["transient_failure_rate"]) == (1, 20.0)
    assert doc["findings_by_kind"] == {"double_charge": 1, "duplicate_operation": 1,
                                       "shadow_mismatch": 1, "stuck_operation": 1}  # fmt: skip
    assert [p["shadow"]["de"]["match_rate"] for p in doc["history"]] == [100.0, 90.0, 75.0]
    assert round(de["trail"]["shadow_match_rate"], 2) == 91.67  # 22 of 24 over three runs
    assert doc["tlds"][HOSTILE_TLD]["engines"]["legacy"]["done"] == 1
    verdicts = {t: (v["readiness"]["verdict"], v["readiness"]["next"])
                for t, v in doc["tlds"].items() if v["readiness"]}  # fmt: skip
    assert verdicts == {
        "com": ("ready", "shadow"),
        "eu": ("ready", "shadow"),
        "de": ("blocked", "temporal 1%"),
        "fr": ("hold", "temporal 25%"),  # 2 finished Temporal renewals, min 3
        "info": ("blocked", None),  # temporal 100%, but a critical finding on Temporal
    }
    assert fr["flag"] == {"mode": "temporal", "rollout": 5}
    assert doc["flags"]["source"] == "bootstrap"


def test_report_cli_formats_options_and_errors(cli: Cli, seeded: Seeded, tmp_path: Path) -> None:
    """md/html/--output, the latest full run by default, thresholds, unknown run, bad format."""
    code, out, _ = cli("report", "--format", "md")
    assert code == 0 and out.startswith(f"# Reconciliation report: run {seeded.run_id} (manual)")
    assert ("| .fr | legacy | 4 | 3 | 1 | 0 | 0 | 75.00% | 0 (0.00%) | 25.00 s | 38.50 s"
            " | 39.70 s |") in out  # fmt: skip
    assert "| .de | 4 | 1 | 75.00% | 1 | 0 (0.00%) | 1 | 1 | 0.00% |" in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in out and HOSTILE not in out
    target = tmp_path / "out" / "r.html"
    code, _, err = cli("report", "--run", str(seeded.previous[0]), "--format", "html",
                       "--output", str(target))  # fmt: skip
    assert code == 0 and "wrote" in err
    assert target.read_text().count("<svg") == 3
    code, out, _ = cli("report", "--format", "json", "--min-volume", "2")
    assert json.loads(out)["tlds"]["fr"]["readiness"]["verdict"] == "ready"
    code, _, err = cli("report", "--run", "999")
    assert code == 1 and "no reconciliation run 999" in err
    code, _, err = cli("report", "--format", "pdf")
    assert code == 2 and "pdf" in err


def test_report_without_any_run(cli: Cli) -> None:
    """No run recorded yet: exit 1 saying so."""
    code, _, err = cli("report")
    assert code == 1 and "no reconciliation run yet" in err


READ_TOKEN = "report-reader-3f1a"


@pytest.fixture
def api(db_dsn: str, tmp_path: Path) -> Iterator[TestClient]:
    """The HTTP API with its lifespan on this test's schema and state dir, as a reader."""
    env = report_env(db_dsn, tmp_path) | {"DUALRUN_API_READ_TOKEN": READ_TOKEN}
    reader = {"Authorization": f"Bearer {READ_TOKEN}"}
    with TestClient(create_app(Settings.from_env(env)), headers=reader) as client:
        yield client


def test_reports_api(api: TestClient, seeded: Seeded, tmp_path: Path) -> None:
    """List (JSON or HTML, both naming the newest run in a header), latest, one run in each
    format, stored files served, 404s, 422s for what is no run number, 401 without the token."""
    listing = api.get("/reports")
    assert listing.status_code == 200
    runs = listing.json()["runs"]
    assert [r["run_id"] for r in runs] == [seeded.run_id, *reversed(seeded.previous)]
    assert runs[0]["links"]["json"] == f"/reports/{seeded.run_id}?format=json"
    page = api.get("/reports", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html")
    assert f'href="/reports/{seeded.run_id}"' in page.text
    for answer in (listing, page):  # the newest run, whatever the format (the link reads it)
        assert answer.headers["dualrun-newest-run"] == str(seeded.run_id)
    latest = api.get("/reports/latest")
    assert latest.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in latest.headers["content-security-policy"]
    assert f"Reconciliation run {seeded.run_id}" in latest.text
    doc = api.get(f"/reports/{seeded.run_id}", params={"format": "json"}).json()
    assert doc["tlds"]["de"]["shadow"]["match_rate"] == 75.0
    md = api.get(f"/reports/{seeded.run_id}?format=md")
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# Reconciliation report")
    by_accept = api.get("/reports/latest", headers={"Accept": "application/json"})
    assert by_accept.json()["run"]["run_id"] == seeded.run_id
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / f"run-{seeded.previous[0]}.md").write_text("stored report\n")
    assert api.get(f"/reports/{seeded.previous[0]}?format=md").text == "stored report\n"
    missing = api.get("/reports/999")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert missing.json()["error"]["field"] == "run_id"
    for path in ("/reports/abc", "/reports/-1", "/reports/\u0663"):  # not a run number at all
        malformed = api.get(path)
        assert malformed.status_code == 422
        assert malformed.json()["error"]["field"] == "run_id"
    assert api.get("/reports/latest", headers={"Authorization": ""}).status_code == 401
    bad = api.get(f"/reports/{seeded.run_id}?format=pdf")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "format"
    assert {"/reports", "/reports/latest", "/reports/{run_id}"} <= set(
        api.get("/openapi.json").json()["paths"]
    )


def test_reconcile_without_temporal_says_what_it_could_not_check(cli: Cli, seeded: Seeded) -> None:
    """Temporal unreachable: the run checks the rest, records status_drift as not checked,
    and its report says so and holds every TLD that could otherwise move on."""
    code, out, err = cli("reconcile", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["unchecked"] == ["status_drift"]
    doc = json.loads(Path(summary["report"]["json"]).read_text())
    assert doc["run"]["unchecked"] == ["status_drift"]
    md = Path(summary["report"]["md"]).read_text()
    assert (
        "**Incomplete:** not checked in this run: status\\_drift (Temporal was unreachable)" in md
    )
    html = Path(summary["report"]["html"]).read_text()
    assert "Incomplete: not checked in this run: status_drift (Temporal was unreachable)" in html
    readiness = [t["readiness"] for t in doc["tlds"].values() if t["readiness"]]
    assert readiness and all(r["verdict"] != "ready" for r in readiness)
    assert all(
        "this run could not check status_drift" in r["reasons"]
        for r in readiness
        if r["next"] is not None
    )
    code, out, err = cli("reconcile")  # the text summary says it too
    assert code == 0, err
    assert "not checked: status_drift (Temporal was unreachable)" in out
