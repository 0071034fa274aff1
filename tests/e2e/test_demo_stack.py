"""`dualrun demo` and the stack it leaves: `--keep` prints the Temporal Web UI and the Unleash
admin UI with a login that works, `dualrun serve` on that stack reads its flags from Unleash,
and without Node the demo still runs on the bootstrap file, saying so once."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.stack_support import Stack, new_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NO_NODE = "Unleash not started: Node >= 20 not found; flags come from the bootstrap file"
READ_TOKEN = "demo-read-token-7c21"


def _stack() -> Stack:
    state_dir = Path(tempfile.mkdtemp(prefix="dualrun-demo-"))
    os.chmod(state_dir, 0o755)  # the embedded PostgreSQL runs as another OS user under root
    return new_stack(state_dir)


def _down(stack: Stack) -> None:
    result = stack.run("down")
    shutil.rmtree(stack.state_dir, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def kept() -> Iterator[tuple[Stack, subprocess.CompletedProcess[str]]]:
    """A small demo run with `--keep` (its stack left up for the tests), then brought down."""
    stack = _stack()
    try:
        result = stack.cli("demo", "--keep", "--renewals", "10", "--seed", "3", timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr[-4000:]
        yield stack, result
    finally:
        _down(stack)


def test_demo_keep_prints_the_web_uis_and_a_login_that_works(
    kept: tuple[Stack, subprocess.CompletedProcess[str]],
) -> None:
    """The summary names the Temporal Web UI and the Unleash admin UI of the stack it left up,
    both answer, and the printed login signs in to Unleash."""
    stack, result = kept
    temporal_ui = f"http://127.0.0.1:{stack.ports['ui']}"
    unleash_ui = f"http://127.0.0.1:{stack.ports['unleash']}"
    lines = result.stdout.splitlines()
    assert f"Temporal Web UI: {temporal_ui} (stack left up: dualrun stack down)" in lines
    assert f"Unleash admin UI: {unleash_ui} (login admin / unleash4all)" in lines
    assert "text/html" in httpx.get(temporal_ui, timeout=10).headers["content-type"]
    assert httpx.get(unleash_ui, timeout=10, follow_redirects=True).status_code == 200
    login = {"username": "admin", "password": "unleash4all"}
    signed_in = httpx.post(f"{unleash_ui}/auth/simple/login", json=login, timeout=10)
    assert signed_in.status_code == 200 and signed_in.json()["username"] == "admin"
    wrong = httpx.post(f"{unleash_ui}/auth/simple/login", json={**login, "password": "x"})
    assert wrong.status_code == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz_once_unleash(url: str, timeout_s: float = 30) -> dict[str, object]:
    """/healthz, polled until the server answers and its flags come from Unleash (or time's up)."""
    deadline, answer = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/healthz", timeout=2).json()
        except httpx.HTTPError:
            answer = {}
        if answer.get("flags") == "unleash":
            break
        time.sleep(0.3)
    return answer


def test_serve_on_the_stack_reads_the_flags_from_unleash(
    kept: tuple[Stack, subprocess.CompletedProcess[str]],
) -> None:
    """`dualrun serve` with nothing set but a token: /healthz and /flags say source unleash,
    with the flags the demo set there."""
    stack, _ = kept
    port = _free_port()
    env = {**stack.env, "DUALRUN_API_READ_TOKEN": READ_TOKEN}
    serve = subprocess.Popen(
        [sys.executable, "-m", "dualrun", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = _healthz_once_unleash(url)
        assert health == {"status": "ok", "database": True, "flags": "unleash"}, health
        answer = httpx.get(f"{url}/flags", headers={"Authorization": f"Bearer {READ_TOKEN}"})
        flags = answer.json()
        assert answer.status_code == 200 and flags["source"] == "unleash", flags
        rules = {row["tld"]: (row["mode"], row["rollout"]) for row in flags["tlds"]}
        assert rules["fr"] == ("temporal", 100) and rules["de"] == ("temporal", 25)
        assert rules["info"][0] == "shadow" and rules["com"][0] == "legacy"
        assert httpx.get(f"{url}/flags").status_code == 401
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=30)
    assert READ_TOKEN not in err


def test_demo_without_node_uses_the_bootstrap_file_and_says_so_once() -> None:
    """No `node` on PATH: the demo exits 0 with its invariants held, flags from the bootstrap
    file, and the reason said once (also with --json, on stderr); its stack comes down."""
    stack = _stack()
    path = os.environ.get("PATH", "")
    stack.env["PATH"] = os.pathsep.join(
        d for d in path.split(os.pathsep) if d and not (Path(d) / "node").exists()
    )
    try:
        result = stack.cli("demo", "--renewals", "10", "--seed", "5", "--json", timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
        summary = json.loads(result.stdout)
        assert summary["flags_from"] == "bootstrap file" and all(summary["invariants"].values())
        assert "unleash_ui" not in summary
        assert (result.stdout + result.stderr).count("Node >= 20 not found") == 1
        assert NO_NODE in result.stderr
        assert not stack.status()[1]["postgres"]["healthy"]  # the demo brought its stack down
    finally:
        _down(stack)
