"""The stack's own Unleash server: flags set through it as the router reads them, its admin API
agreeing; without Node, or with `--no-unleash`, flags from the bootstrap file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.stack_support import Stack, is_open, line
from tests.integration.stack_support import stack as stack  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NO_NODE = "Unleash not started: Node >= 20 not found; flags come from the bootstrap file"


def _show(stack: Stack) -> tuple[str, dict[str, tuple[str, int | None]]]:
    """`flags show --json`: the source and, per TLD, (mode, rollout)."""
    result = stack.cli("flags", "show", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    return doc["source"], {r["tld"]: (r["mode"], r["rollout"]) for r in doc["tlds"]}


def _strategies(stack: Stack) -> list[dict[str, Any]]:
    """The routing flag's strategies as Unleash's own admin API returns them."""
    conn = json.loads((stack.state_dir / "unleash" / "connection.json").read_text())
    path = "/api/admin/projects/default/features/dualrun.renewals/environments/development"
    answer = httpx.get(
        f"{conn['url']}{path}/strategies", headers={"Authorization": conn["admin_token"]}
    )
    assert answer.status_code == 200, answer.text
    strategies: list[dict[str, Any]] = answer.json()
    return strategies


def test_flags_go_through_the_stacks_unleash(stack: Stack) -> None:
    """Flags set while Unleash is not up (the bootstrap file) are loaded into Unleash when it
    starts; `flags set fr temporal --rollout 30` is the strategy Unleash's admin API returns and
    `flags show` says source unleash; `--no-unleash` stops it, its last flags kept in the
    bootstrap file."""
    stack.up_ok("--no-unleash")  # the database: `flags set` records each change there
    before = stack.cli("flags", "set", "de", "shadow", "--json")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["target"].startswith("bootstrap file")
    stack.up_ok()
    assert _show(stack) == ("unleash", {**_show_legacy(), "de": ("shadow", 100)})

    result = stack.cli("flags", "set", "fr", "temporal", "--rollout", "30", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"tld": "fr", "mode": "temporal", "rollout": 30,
                                         "changed": True, "target": "unleash"}  # fmt: skip
    fr = [s for s in _strategies(stack) if s["constraints"][0]["values"] == ["fr"]]
    assert len(fr) == 1 and fr[0]["parameters"]["rollout"] == "30"
    assert fr[0]["parameters"]["stickiness"] == "domain"
    assert [v["payload"]["value"] for v in fr[0]["variants"]] == ["temporal"]
    source, rules = _show(stack)
    assert source == "unleash" and rules["fr"] == ("temporal", 30)
    routed = stack.cli("route", "explain", "a.info", "--json").stdout
    assert json.loads(routed.splitlines()[0])["source"] == "unleash"  # the router reads it too

    off = stack.up_ok("--no-unleash")
    assert "Unleash not started (--no-unleash)" in line(off.stdout, "unleash")
    assert not is_open(stack.ports["unleash"])
    source, rules = _show(stack)
    assert source == "bootstrap" and rules["fr"] == ("temporal", 30) and rules["de"][0] == "shadow"


def _show_legacy() -> dict[str, tuple[str, int | None]]:
    return {tld: ("legacy", 100) for tld in ("com", "de", "eu", "fr", "info")}


def test_without_node_up_says_so_once_and_flags_use_the_file(stack: Stack) -> None:
    """With no `node` on PATH, `stack up` succeeds, says once that Unleash is not started (a
    printed line, plus a JSON log event only when logs are for machines), and `flags show`/
    `flags set` use the bootstrap file."""
    path = os.environ.get("PATH", "")
    stack.env["PATH"] = os.pathsep.join(
        d for d in path.split(os.pathsep) if d and not (Path(d) / "node").exists()
    )
    result = stack.up_ok()
    assert result.stdout.count(NO_NODE) == 1
    assert result.stderr.count('"event": "stack.unleash.off"') == 1  # JSON logs: for machines
    assert not is_open(stack.ports["unleash"])
    stack.env["DUALRUN_LOG_FORMAT"] = "console"  # log lines a person reads, as on a terminal
    console = stack.up_ok()
    assert (console.stdout + console.stderr).count("Node >= 20 not found") == 1, console.stderr
    stack.env["DUALRUN_LOG_FORMAT"] = "json"

    code, services = stack.status()
    assert code == 0 and services["unleash"]["mode"] == "off"
    assert services["unleash"]["note"] == NO_NODE
    assert _show(stack)[0] == "bootstrap"
    result = stack.cli("flags", "set", "fr", "temporal", "--rollout", "30", "--json")
    assert json.loads(result.stdout)["target"].startswith("bootstrap file")
    assert _show(stack) == ("bootstrap", {**_show_legacy(), "fr": ("temporal", 30)})
