"""`dualrun stack up` as root with the state dir under a private (0700) parent, as a clone in
`/root` of a container: PostgreSQL's OS user cannot reach it, so its data lives elsewhere."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.integration.stack_support import line, new_stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # Only root has this problem to solve: a non-root user runs PostgreSQL as itself, and
    # reaches its own 0700 directories. CI runs as root, so it always runs there.
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="needs root: as any other user PostgreSQL runs as that user, so there is "
        "no unreachable parent to work around (CI runs as root)",
    ),
]


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(row for row in status.splitlines() if row.startswith("Uid:")).split()[1])


def test_up_as_root_with_the_state_dir_under_a_private_parent() -> None:
    """PostgreSQL runs with its data outside the 0700 tree, owned by its OS user and recorded in
    the state dir; `stack down` removes it; the modes of the user's directories never change."""
    home = Path(tempfile.mkdtemp(prefix="dualrun-home-"))  # 0700 and root's, like /root
    clone = home / "clone"
    clone.mkdir(mode=0o700)
    state_dir = clone / ".dualrun"
    stack = new_stack(state_dir)
    modes = {path: path.stat().st_mode for path in (home, clone)}
    try:
        result = stack.up_ok("--no-unleash")
        record = state_dir / "postgres" / "location"
        base = Path(record.read_text().strip())
        data = base / "data"
        assert home not in data.parents and (data / "PG_VERSION").exists()
        owner = data.stat().st_uid
        assert owner != 0 and pwd.getpwuid(owner).pw_name in ("postgres", "nobody")
        assert str(base) in line(result.stdout, "postgres")

        code, services = stack.status()
        pg = services["postgres"]
        assert code == 0 and pg["healthy"] and str(base) in pg["note"]
        assert _uid_of(pg["pid"]) == owner  # the server runs as the user owning its data
        dsn = f"postgresql://postgres@127.0.0.1:{stack.ports['pg']}/postgres"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SHOW data_directory").fetchone() == (str(data),)

        down = stack.run("down")
        assert down.returncode == 0 and "postgres" in down.stdout, down.stderr
        assert not base.exists() and not record.exists()
        assert {path: path.stat().st_mode for path in (home, clone)} == modes
    finally:
        stack.run("down")
        shutil.rmtree(home, ignore_errors=True)
