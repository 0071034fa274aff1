"""The operators' kit in ops/: alert rules, dashboard and runbooks agree with the code."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from dualrun.cli.main import cli
from reconciler.model import ALERTING, SEVERITY, Severity

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
RULES = OPS / "prometheus" / "rules.yml"
RULES_TEST = OPS / "prometheus" / "rules_test.yml"
PROM_CONFIG = OPS / "prometheus" / "prometheus.yml"
DASHBOARD = OPS / "grafana" / "dualrun.json"
RUNBOOKS = OPS / "runbooks"
PACKAGES = ("renewals", "dualrun", "reconciler", "temporal_flow", "legacy_adapter", "ops")

# Commands the runbooks use that were built alongside the kit: should one not be registered
# (yet), a runbook may use only the options agreed for it; registered, the real command is
# checked like every other.
PENDING: dict[str, set[str]] = {
    "relaunch": {
        *("--tld", "--status", "--since", "--until", "--stuck-after", "--rate"),
        *("--include-refusals", "--resume", "--dry-run", "--json", "--help"),
    },
    "report": {"--run", "--format", "--output", "--fresh", "--runs", "--help"},
}
# Prometheus' own series, which the project does not export.
PROMETHEUS_BUILTIN = {"up"}

_DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(dualrun_[a-z0-9_]+)\"")
_REFERENCE = re.compile(r"\b(dualrun_[a-z0-9_]+)\b")
_SERIES_SUFFIXES = {
    "Counter": ("", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("", "_count", "_sum", "_created"),
}


def exported_series() -> set[str]:
    """Every series name the source defines (grep of the metric constructors)."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            for kind, name in _DEFINITION.findall(path.read_text()):
                base = name.removesuffix("_total") if kind == "Counter" else name
                names.add(name)
                names.update(base + suffix for suffix in _SERIES_SUFFIXES[kind])
    return names


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {
        slug(line.lstrip("#"))
        for line in path.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    }


def test_exported_metrics_are_found() -> None:
    """The grep finds the metrics the kit relies on (so the drift checks below mean something)."""
    names = exported_series()
    for name in (
        "dualrun_routing_decisions_total",
        "dualrun_flag_source",
        "dualrun_flag_fallbacks_total",
        "dualrun_findings_total",
        "dualrun_alert_webhook_failures_total",
        "dualrun_stuck_operations",
        "dualrun_reconcile_last_run_timestamp_seconds",
        "dualrun_renewal_duration_seconds_bucket",
    ):
        assert name in names, name


# -- alert rules -------------------------------------------------------------------------------
def test_every_alert_has_severity_summary_and_a_runbook_that_exists() -> None:
    """Each alert: `for`, a severity, summary, description and a runbook_url to a real file."""
    alerts = rules()
    assert len(alerts) >= 10
    names = [r["alert"] for r in alerts]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alerts:
        name = rule["alert"]
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), name
        target, _, anchor = notes["runbook_url"].partition("#")
        path = ROOT / target
        assert path.is_file() and path.is_relative_to(RUNBOOKS), f"{name}: {target}"
        if anchor:
            assert anchor in anchors(path), f"{name}: no heading #{anchor} in {target}"
        grouped = re.findall(r"by \(([^)]*)\)", rule["expr"])
        if any("tld" in g.split(", ") for g in grouped):
            assert "{{ $labels.tld }}" in notes["description"], name


def test_every_alerting_finding_kind_alerts_with_its_severity() -> None:
    """Critical finding kinds page on any increase; the others (duplicates) warn."""
    by_kind = {r["labels"].get("kind"): r for r in rules() if "kind" in r["labels"]}
    for kind in ALERTING:
        rule = by_kind[kind.value]
        assert f'dualrun_findings_total{{kind="{kind.value}"}}' in rule["expr"]
        assert "increase(" in rule["expr"] and rule["expr"].rstrip().endswith("> 0")
        expected = "critical" if SEVERITY[kind] == Severity.CRITICAL else "warning"
        assert rule["labels"]["severity"] == expected, kind


def test_rules_use_only_exported_metrics() -> None:
    """No alert watches a metric the code does not export (no silent, never-firing alert)."""
    names = exported_series() | PROMETHEUS_BUILTIN
    for rule in rules():
        used = set(_REFERENCE.findall(rule["expr"])) | (
            {"up"} if re.search(r"\bup\{", rule["expr"]) else set()
        )
        assert used, rule["alert"]
        assert used <= names, f"{rule['alert']}: {sorted(used - names)}"


def test_rules_tests_cover_every_alert() -> None:
    """rules_test.yml has a firing case for every alert of rules.yml."""
    doc = yaml.safe_load(RULES_TEST.read_text())
    fired = {
        case["alertname"]
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {r["alert"] for r in rules()} <= fired


# -- promtool ----------------------------------------------------------------------------------
def promtool() -> str | None:
    """$PROMTOOL, else the one .ci/run puts beside the venv's python, else the PATH's."""
    if os.environ.get("PROMTOOL"):
        return os.environ["PROMTOOL"]
    beside = Path(sys.executable).parent / "promtool"
    return str(beside) if beside.exists() else shutil.which("promtool")


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    for panel in _panels(json.loads(DASHBOARD.read_text())):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {target['refId']}", target["expr"]


def test_promtool_checks_and_tests_the_rules(tmp_path: Path) -> None:
    """promtool: config and rules are valid, the unit tests pass, the dashboard's PromQL parses."""
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not installed: run ops/prometheus/install-promtool.sh")

    def run(*args: str) -> None:
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    run("check", "config", str(PROM_CONFIG))
    run("check", "rules", str(RULES))
    run("test", "rules", str(RULES_TEST))
    # The dashboard's expressions, Grafana's variables replaced, as recording rules.
    recorded = []
    for n, (_, expr) in enumerate(_dashboard_exprs()):
        promql = (
            expr.replace("$__rate_interval", "2m").replace("$__range", "1h").replace("$tld", ".*")
        )
        recorded.append({"record": f"dashboard:expr_{n}", "expr": promql})
    dashboard_rules = tmp_path / "dashboard_rules.yml"
    dashboard_rules.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": recorded}]}))
    run("check", "rules", str(dashboard_rules))


# -- dashboard ---------------------------------------------------------------------------------
def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_dashboard_is_valid_grafana_json_with_a_prometheus_datasource_variable() -> None:
    """schemaVersion 39, a Prometheus data source variable every query panel uses."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_dashboard_queries_only_metrics_the_code_exports() -> None:
    """Every panel query names a real series: the dashboard cannot drift from the code."""
    names = exported_series()
    used: set[str] = set()
    for where, expr in _dashboard_exprs():
        found = set(_REFERENCE.findall(expr))
        assert found, f"{where}: no dualrun metric in {expr}"
        assert found <= names, f"{where}: {sorted(found - names)} not exported"
        used |= found
    # The panels the operators asked for: routing split, flag source, durations per engine,
    # findings by kind, webhook failures, stuck operations.
    for name in (
        "dualrun_routing_decisions_total",
        "dualrun_flag_source",
        "dualrun_renewal_duration_seconds_bucket",
        "dualrun_findings_total",
        "dualrun_alert_webhook_failures_total",
        "dualrun_stuck_operations",
    ):
        assert name in used, name


# -- runbooks ----------------------------------------------------------------------------------
_FENCE = re.compile(r"^\s*```")
_INLINE = re.compile(r"`(dualrun [^`]+)`")
_SEPARATORS = {"|", "||", "&&", ";", ">", ">>", "2>&1", "&"}


def runbook_command_lines() -> list[tuple[str, str, bool]]:
    """(runbook, command line, is a synopsis) for every `dualrun ...` the runbooks quote."""
    found: list[tuple[str, str, bool]] = []
    for path in sorted(RUNBOOKS.glob("*.md")):
        text = path.read_text()
        in_block, pending = False, ""
        for line in text.splitlines():
            if _FENCE.match(line):
                in_block = not in_block
                continue
            if not in_block:
                continue
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            words = line.removeprefix("$ ").split()
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]  # VAR=value before the command
            if words and (words[0] == "dualrun" or words[0].endswith("/dualrun")):
                found.append((path.name, " ".join(["dualrun", *words[1:]]), False))
        for span in _INLINE.findall(text):
            line = " ".join(span.split())
            found.append((path.name, line, "[" in line))
    return found


def _resolve(words: list[str]) -> tuple[list[str], click.Command | None, list[str]]:
    """(subcommand path, command, remaining words); command None when not registered."""
    command: click.Command = cli
    path: list[str] = []
    while isinstance(command, click.Group) and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words[0]]
        words = words[1:]
    return path, (None if command is cli else command), words


def test_every_runbook_command_parses() -> None:
    """Each quoted `dualrun ...` line names a real subcommand and only options it has."""
    lines = runbook_command_lines()
    assert len(lines) >= 40
    helps: dict[tuple[str, ...], str] = {}
    runner = CliRunner()
    for runbook, line, synopsis in lines:
        words = shlex.split(line)[1:]
        cut = next((i for i, w in enumerate(words) if w in _SEPARATORS), len(words))
        words = words[:cut]
        path, command, rest = _resolve(words)
        where = f"{runbook}: {line}"
        options = [w.strip("[]").split("=", 1)[0] for w in rest if w.strip("[]").startswith("-")]
        if command is None:
            assert rest and rest[0] in PENDING, f"{where}: no such subcommand"
            unknown = set(options) - PENDING[rest[0]]
            assert not unknown, f"{where}: {sorted(unknown)} not agreed for `{rest[0]}`"
            continue
        key = tuple(path)
        if key not in helps:
            result = runner.invoke(cli, [*path, "--help"])
            assert result.exit_code == 0, f"dualrun {' '.join(path)} --help: {result.output}"
            helps[key] = result.output
        known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for option in options:
            assert option in known and option in helps[key], f"{where}: no option {option}"
        if not synopsis:  # a real command line: click parses it (types, arity, choices)
            try:
                command.make_context(" ".join(["dualrun", *path]), list(rest))
            except click.ClickException as exc:
                pytest.fail(f"{where}: {exc.format_message()}")


def test_runbook_links_resolve() -> None:
    """Links between runbooks (and to their sections) point at files and headings that exist."""
    for path in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if "://" in target:
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.is_file(), f"{path.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked), f"{path.name}: {target}"


def test_package_data_ships_the_kit() -> None:
    """pyproject's package data for `ops` matches every file of the kit."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["ops"]
    kit = [
        p.relative_to(OPS).as_posix()
        for folder in ("prometheus", "grafana", "runbooks")
        for p in (OPS / folder).iterdir()
        if p.suffix in {".yml", ".json", ".md"}
    ]
    assert len(kit) >= 9
    for name in kit:
        assert any(fnmatch(name, pattern) for pattern in patterns), name
