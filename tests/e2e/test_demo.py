"""`dualrun demo` end to end: the embedded stack, both engines, a reconciliation, invariants."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.postgres import port_open

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_home() -> Iterator[Path]:
    """A 0700 directory, like /root in a container: the README's set-up as root, where the
    embedded PostgreSQL (another OS user under root) cannot reach the state dir."""
    home = Path(tempfile.mkdtemp(prefix="dualrun-home-"))  # mkdtemp makes it 0700
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def demo_env(private_home: Path) -> Iterator[dict[str, str]]:
    """A fresh state dir under the private home and free ports: the demo brings up and tears
    down its own stack."""
    state = private_home / "clone" / ".dualrun"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUALRUN_", "TEMPORAL_"))}
    env.update(
        {
            "DUALRUN_STATE_DIR": str(state),
            "DUALRUN_PG_PORT": str(_free_port()),
            "DUALRUN_TEMPORAL_PORT": str(_free_port()),
            "DUALRUN_TEMPORAL_UI_PORT": str(_free_port()),
            "DUALRUN_REGISTRY_SIM_PORT": str(_free_port()),
            "DUALRUN_UNLEASH_PORT": str(_free_port()),
        }
    )
    yield env
    subprocess.run(
        [sys.executable, "-m", "dualrun", "stack", "down"],
        env=env,
        timeout=120,
        capture_output=True,
    )
    shutil.rmtree(state, ignore_errors=True)


DEMO_RENEWALS = "1000"  # the "any size >= 1,000", at its smallest


def test_demo_runs_to_its_summary_and_holds_its_invariants(
    demo_env: dict[str, str], private_home: Path
) -> None:
    """A 1,000-renewal burst: exit 0, per-engine figures, findings by kind, invariants; .info
    (shadow) not blocked by legacy's transient failures, .fr (temporal 100%) complete on the
    demo's one run; the stack down, the private home left 0700."""
    result = subprocess.run(
        [sys.executable, "-m", "dualrun", "demo", "--renewals", DEMO_RENEWALS, "--json",
         "--seed", "7"],
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert set(summary["engines"]) == {"legacy", "temporal"}
    for engine in summary["engines"].values():
        assert engine["count"] > 0 and engine["unfinished"] == 0
        assert engine["p50_s"] is not None and engine["p95_s"] >= engine["p50_s"]
    assert summary["invariants"] and all(summary["invariants"].values())
    assert summary["flags_from"] == "unleash"  # the stack's own Unleash server (Node is here)
    assert summary["findings"].get("duplicate_operation", 0) >= 1  # the injected duplicates
    report = Path(summary["report"])
    assert report.suffix == ".html" and report.exists()
    assert "<svg" in report.read_text()  # the charts of the run's report
    rollout = summary["rollout"]
    assert rollout["info"]["step"] == {"mode": "shadow", "rollout": None}
    assert rollout["info"]["verdict"] == "ready", rollout["info"]
    assert rollout["fr"]["step"] == {"mode": "temporal", "rollout": 100}
    assert rollout["fr"]["verdict"] == "complete", rollout["fr"]
    assert rollout["fr"]["checklist"]  # what retiring legacy for .fr takes
    assert summary["readiness_runs"] == {"judged_on": 1, "production_default": 7}
    doc = json.loads(report.with_suffix(".json").read_text())
    info = doc["tlds"]["info"]["shadow"]
    assert info["not_comparable"] > 0 and info["mismatched"] == 0  # legacy's own failures
    assert private_home.stat().st_mode & 0o777 == 0o700  # never chmodded
    ports = ("DUALRUN_PG_PORT", "DUALRUN_TEMPORAL_PORT", "DUALRUN_REGISTRY_SIM_PORT",
             "DUALRUN_UNLEASH_PORT")  # fmt: skip
    for port in ports:
        assert not port_open("127.0.0.1", int(demo_env[port])), f"{port} still open"
