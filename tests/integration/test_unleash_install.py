"""The Unleash server's first use, as on a fresh machine with Node: `npm ci` by the stack itself
(no step beforehand), again after a lockfile change, and a failed `npm ci` falling back to the
bootstrap file, said once. Each runs on a copy (never the checkout's own node_modules)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.processes import cmdline
from ops.unleash import installed
from tests.integration.stack_support import Stack, fresh_checkout
from tests.integration.stack_support import stack as stack  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAMP = Path("node_modules") / ".dualrun-lock.sha256"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory removed afterwards, node_modules (190 MB) and all."""
    path = Path(tempfile.mkdtemp(prefix="dualrun-install-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _digest(directory: Path) -> str:
    return hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()


def _unleash_rows(output: str) -> list[str]:
    return [row for row in output.splitlines() if row.startswith("unleash")]


def test_stack_up_installs_unleash_on_first_use_and_after_a_lockfile_change(
    scratch: Path, stack: Stack
) -> None:
    """On a fresh checkout (no node_modules), `stack up` runs `npm ci` itself, says so, stamps
    the install with the lockfile's digest and starts that checkout's Unleash server, the flags
    then coming from it; a second start installs nothing; a changed package-lock.json is a
    fresh `npm ci` (node_modules replaced) and a new stamp."""
    stack.code = fresh_checkout(scratch)
    unleash_dir = scratch / "ops" / "unleash"
    assert not (unleash_dir / "node_modules").exists()
    result = stack.up_ok()
    rows = _unleash_rows(result.stdout)
    assert "installing" in rows[0] and "npm ci, first use" in rows[0], result.stdout
    assert "started" in rows[1] and f"127.0.0.1:{stack.ports['unleash']}" in rows[1]
    assert (unleash_dir / STAMP).read_text().strip() == _digest(unleash_dir)

    _, services = stack.status()
    assert services["unleash"]["healthy"]
    assert str(unleash_dir / "start.mjs") in cmdline(services["unleash"]["pid"])
    shown = stack.cli("flags", "show", "--json")
    assert json.loads(shown.stdout)["source"] == "unleash", shown.stderr
    stack.up_ok("--no-unleash")
    marker = unleash_dir / "node_modules" / "marker-of-this-install"
    marker.write_text("x")
    again = stack.up_ok()  # installed from this lockfile: no second `npm ci`
    assert [row.split()[1] for row in _unleash_rows(again.stdout)] == ["started"]
    assert marker.exists()

    stack.up_ok("--no-unleash")
    lock = json.loads((unleash_dir / "package-lock.json").read_text())
    (unleash_dir / "package-lock.json").write_text(json.dumps(lock, indent=1) + "\n")
    assert not installed(unleash_dir)  # same packages, another file: the stamp differs
    changed = stack.up_ok()
    assert [row.split()[1] for row in _unleash_rows(changed.stdout)] == ["installing", "started"]
    assert not marker.exists() and installed(unleash_dir)
    assert (unleash_dir / STAMP).read_text().strip() == _digest(unleash_dir)


def test_a_failed_npm_ci_falls_back_to_the_bootstrap_file_once(scratch: Path, stack: Stack) -> None:
    """`npm ci` failing for real (offline, nothing in npm's cache): `stack up` still succeeds,
    says once why Unleash is not started (npm's error and its log), and flags come from the
    bootstrap file; no stamp is left, so the next `stack up` tries again."""
    stack.code = fresh_checkout(scratch / "checkout")
    stack.env |= {"npm_config_offline": "true", "npm_config_cache": str(scratch / "no-cache")}
    result = stack.up_ok()
    said = "Unleash not started: `npm ci` failed (exit "
    assert result.stdout.count(said) == 1, result.stdout
    npm_log = stack.state_dir / "logs" / "npm-ci.log"
    row = next(r for r in result.stdout.splitlines() if r.startswith("unleash") and " off " in r)
    assert "ENOTCACHED" in row and str(npm_log) in row
    assert row.endswith("; flags come from the bootstrap file")
    assert "ENOTCACHED" in npm_log.read_text()
    assert result.stderr.count('"event": "stack.unleash.off"') == 1  # JSON logs: for machines
    assert not (scratch / "checkout" / "ops" / "unleash" / STAMP).exists()

    code, services = stack.status()
    assert code == 0 and services["unleash"]["mode"] == "off"
    assert services["unleash"]["note"].startswith(said)
    shown = stack.cli("flags", "show", "--json")
    assert json.loads(shown.stdout)["source"] == "bootstrap", shown.stderr
