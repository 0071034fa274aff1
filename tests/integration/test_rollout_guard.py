"""The guard's bookkeeping on real PostgreSQL and the flag file: it reads the TLD rules while the
flag is off (so `flags on` does not bring back a TLD it should have flipped), and the findings
of before an upgrade to the guard are history, not a reason to roll every TLD back."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import psycopg
import pytest

from dualrun.flags.local import SEED, LocalFlags
from dualrun.flags.model import RuleChange
from dualrun.rollout.guard import guard
from dualrun.wiring import migrate_all
from renewals.db.migrate import CORE_MIGRATIONS, migrate
from renewals.db.pool import async_pool
from renewals.model import Mode
from renewals.settings import Settings
from tests.harness import Cli
from tests.integration.test_rollout import cli, env, mode_of, raw, receiver, run

pytestmark = pytest.mark.integration
__all__ = ["cli", "env", "receiver"]  # the fixtures this module uses

FLAG = "dualrun.renewals"
_FINDING = """
INSERT INTO findings (finding_key, kind, severity, tld, engine, summary)
VALUES (%s, 'double_charge', 'critical', %s, 'temporal', 'charged twice')
"""


def add_finding(dsn: str, key: str, tld: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(_FINDING, (key, tld))


async def test_the_guard_acts_while_the_flag_is_off(cli: Cli, env: dict[str, str]) -> None:
    """Flag off, a critical Temporal finding on .fr: the guard flips the .fr rule to legacy, so
    after `flags on` .fr still routes to legacy; set (with its verdict and run) and off are
    rollout events."""
    code, judged = await run(cli, "reconcile")
    assert code == 0
    code, _, err = await raw(cli, "flags", "set", "fr", "temporal", "--rollout", "100")
    assert code == 0, err
    code, off = await run(cli, "flags", "off")
    assert code == 0 and "fr" in off["tlds_moved"]
    add_finding(env["DUALRUN_DATABASE_URL"], "double_charge:renew:off.fr:2027-01-01", "fr")
    code, guarded = await run(cli, "rollout", "guard")
    assert code == 0 and [r["tld"] for r in guarded["rolled_back"]] == ["fr"]
    assert guarded["rolled_back"][0]["from"] == {"mode": "temporal", "rollout": 100}
    code, on = await run(cli, "flags", "on")
    assert code == 0 and "fr" not in on["tlds_moved"]  # its rule is legacy now
    assert mode_of(env, "fr") == ("legacy", 100)
    code, shown = await run(cli, "flags", "show")
    assert shown["enabled"] and next(t for t in shown["tlds"] if t["tld"] == "fr")["mode"] == (
        "legacy"
    )
    code, status = await run(cli, "rollout", "status")
    fr = next(t for t in status["tlds"] if t["tld"] == "fr")
    assert fr["last_change"]["action"] == "guard"
    with psycopg.connect(env["DUALRUN_DATABASE_URL"]) as conn:
        events = conn.execute(
            "SELECT action, verdict, run_id FROM rollout_events WHERE tld = 'fr' ORDER BY event_id"
        ).fetchall()
    assert [e[0] for e in events] == ["set", "off", "guard"]
    assert events[0][1:] == ("ready", judged["run_id"])  # legacy → shadow was ready then


def test_findings_from_before_the_guard_are_history(empty_schema_dsn: str, tmp_path: Path) -> None:
    """A schema from before the guard (0008) with a Temporal critical finding on .de, upgraded:
    the first guard rolls back only .fr, whose finding came after the upgrade."""
    before_guard = tmp_path / "migrations"
    before_guard.mkdir()
    for path in sorted(CORE_MIGRATIONS.glob("*.sql")):
        if int(path.name[:4]) <= 8:
            shutil.copy(path, before_guard / path.name)
    with psycopg.connect(empty_schema_dsn) as conn:
        migrate(conn, "core", before_guard)
    add_finding(empty_schema_dsn, "double_charge:renew:old.de:2026-01-01", "de")
    migrate_all(empty_schema_dsn)  # 0009 (the guard) and 0011 (its backfill)
    add_finding(empty_schema_dsn, "double_charge:renew:new.fr:2027-01-01", "fr")
    boot = tmp_path / "bootstrap.json"
    boot.write_text(SEED.read_text())
    for tld in ("de", "fr"):
        LocalFlags(boot, FLAG).set_rule(RuleChange(tld, Mode.TEMPORAL, 100))
    settings = Settings.from_env(
        {
            "DUALRUN_DATABASE_URL": empty_schema_dsn,
            "DUALRUN_STATE_DIR": str(tmp_path),
            "DUALRUN_FLAGS_BOOTSTRAP": str(boot),
        }
    )

    async def first_guard() -> list[str]:
        pool = await async_pool(settings.dsn, max_size=2)
        try:
            return [r.tld for r in await guard(pool, settings)]
        finally:
            await pool.close()

    assert asyncio.run(first_guard()) == ["fr"]
    state = LocalFlags(boot, FLAG).state()
    assert (state.rule("de").mode, state.rule("fr").mode) == (Mode.TEMPORAL, Mode.LEGACY)  # type: ignore[union-attr]
