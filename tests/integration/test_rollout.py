"""The guarded rollout (DESIGN §4) as an SRE drives it: `dualrun rollout next|back|status|guard`
and the same over HTTP, against real PostgreSQL, the Temporal dev server and the flag file."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from dualrun.flags.local import SEED, LocalFlags
from renewals.billing import BillingLedger
from renewals.env import Secret
from tests.harness import TODAY, Cli, Harness, cli_runner, worker_env
from tests.integration.api_support import client
from tests.integration.test_reconciler import Receiver

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=15)
FLAG = "dualrun.renewals"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def env(h: Harness, tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    """This test's database, Temporal, simulator, flag file, reports and webhook."""
    boot = tmp_path / "bootstrap.json"
    boot.write_text(SEED.read_text())
    return {
        **worker_env(h.settings),
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(boot),
        "DUALRUN_WEBHOOK_URL": receiver.url,
        "DUALRUN_REPORT_MIN_VOLUME": "1",
        "DUALRUN_API_TOKEN": "write-token-for-tests",
        "DUALRUN_API_READ_TOKEN": "read-token-for-tests",
    }


@pytest.fixture
def cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Iterator[Cli]:
    """`dualrun ARGS` in process; structlog put back before the simulator's teardown logs."""
    saved = structlog.get_config()
    yield cli_runner(env, monkeypatch, capsys)
    structlog.configure(**saved)


async def run(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    """`dualrun ARGS --json` in a thread (the CLI runs its own event loop)."""
    code, out, err = await asyncio.to_thread(cli, *args, "--json")
    assert out, err
    return code, json.loads(out)


async def raw(cli: Cli, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(cli, *args)


def mode_of(env: dict[str, str], tld: str) -> tuple[str, int] | None:
    rule = LocalFlags(Path(env["DUALRUN_FLAGS_BOOTSTRAP"]), FLAG).state().rule(tld)
    return (rule.mode.value, rule.rollout) if rule else None


async def stray_charge(h: Harness, submitted: dict[str, Any], charge_key: str) -> None:
    """A second charge for a submitted renewal, under another charge key: a double charge."""
    await BillingLedger(h.pool).charge(
        charge_key=charge_key,
        idempotency_key=submitted["idempotency_key"],
        operation_id=submitted["operation_id"],
        customer_id="cust-1",
        amount_cents=1099,
        currency="EUR",
    )


async def test_next_refuses_until_ready_then_moves_one_step(cli: Cli, env: dict[str, str]) -> None:
    """No run: hold, nothing moves (exit 1, reasons). After a clean run: legacy → shadow, one
    step, recorded; blocked by a critical finding, it refuses unless forced with a reason."""
    before = mode_of(env, "com")
    code, held = await run(cli, "rollout", "next", "com")
    assert code == 1 and not held["applied"] and held["verdict"] == "hold"
    assert any("no full reconciliation run" in r for r in held["reasons"])
    assert mode_of(env, "com") == before
    code, _ = await run(cli, "reconcile")
    assert code == 0
    code, dry = await run(cli, "rollout", "next", "com", "--dry-run")
    assert code == 0 and dry["verdict"] == "ready" and not dry["applied"]
    assert mode_of(env, "com") == before
    code, moved = await run(cli, "rollout", "next", "com")
    assert code == 0 and moved["applied"]
    assert (moved["from"], moved["to"]) == (
        {"mode": "legacy", "rollout": None},
        {"mode": "shadow", "rollout": None},
    )
    assert mode_of(env, "com") == ("shadow", 100)
    code, again = await run(
        cli, "rollout", "next", "com"
    )  # shadow → temporal 1%: no comparison yet
    assert code == 1 and again["verdict"] == "hold" and mode_of(env, "com") == ("shadow", 100)
    code, _, err = await raw(cli, "rollout", "next", "com", "--force")
    assert code == 2 and "reason" in err
    code, forced = await run(cli, "rollout", "next", "com", "--force", "--reason", "drill")
    assert code == 0 and forced["applied"] and forced["forced"]
    assert mode_of(env, "com") == ("temporal", 1)
    code, back = await run(cli, "rollout", "back", "com", "--reason", "drill over")
    assert code == 0 and back["to"] == {"mode": "shadow", "rollout": None}
    code, status = await run(cli, "rollout", "status")
    com = next(t for t in status["tlds"] if t["tld"] == "com")
    assert com["step"] == {"mode": "shadow", "rollout": None}
    assert com["last_change"]["action"] == "back" and com["last_change"]["actor"].startswith(
        "user:"
    )


async def test_guard_rolls_a_tld_back_on_a_temporal_double_charge(
    h: Harness, cli: Cli, env: dict[str, str], receiver: Receiver
) -> None:
    """A Temporal-side double charge on .fr: `rollout guard --once` sends new .fr renewals to
    legacy at once; the decided one stays on Temporal; it is recorded, posted and shown."""
    code, _, err = await raw(cli, "flags", "set", "fr", "temporal", "--rollout", "100")
    assert code == 0, err
    h.seed("fr", "kept.fr", "after.fr", expiry=EXPIRY)
    async with h.workers():
        code, first = await run(cli, "submit", "--domain", "kept.fr", "--years", "1",
            "--current-expiry", EXPIRY.isoformat(), "--customer", "cust-1",
        )  # fmt: skip
        assert code == 0 and first["engine"] == "temporal"
        await h.result(first["idempotency_key"])
    await stray_charge(h, first, "stray-charge")
    code, guarded = await run(cli, "rollout", "guard", "--once")
    assert code == 0
    assert [r["tld"] for r in guarded["rolled_back"]] == ["fr"]
    assert guarded["rolled_back"][0]["findings"] == [f"double_charge:{first['idempotency_key']}"]
    assert mode_of(env, "fr") == ("legacy", 100)
    code, again = await run(cli, "rollout", "guard")  # once per finding
    assert again == {"rolled_back": []}
    submit = ("submit", "--years", "1", "--current-expiry", EXPIRY.isoformat(),
              "--customer", "cust-1")  # fmt: skip
    code, new = await run(cli, *submit, "--domain", "after.fr")
    assert new["engine"] == "legacy" and not new["deduplicated"]
    code, pinned = await run(cli, *submit, "--domain", "kept.fr")
    assert pinned["engine"] == "temporal" and pinned["deduplicated"]
    assert [b["tld"] for b in receiver.bodies if b.get("event") == "rollback"] == ["fr"]
    code, status = await run(cli, "rollout", "status")
    fr = next(t for t in status["tlds"] if t["tld"] == "fr")
    assert (fr["last_change"]["action"], fr["last_change"]["actor"]) == ("guard", "guard")
    code, _ = await run(cli, "reconcile")
    code, report, _ = await raw(cli, "report", "--format", "json", "--fresh")
    history = json.loads(report)["tlds"]["fr"]["rollouts"]
    assert [(e["action"], e["to_mode"]) for e in history] == [
        ("guard", "legacy"),
        ("set", "temporal"),
    ]


async def test_the_same_actions_over_http(h: Harness, env: dict[str, str], tmp_path: Path) -> None:
    """GET /rollout with the read token; moves with the write token only (403 with the read
    token); a move is recorded with the API's actor; a move refused is a 409 with the reasons."""
    settings = dataclasses.replace(
        h.settings,
        flags_bootstrap=Path(env["DUALRUN_FLAGS_BOOTSTRAP"]),
        state_dir=tmp_path,
        api_token=Secret(env["DUALRUN_API_TOKEN"]),
        api_read_token=Secret(env["DUALRUN_API_READ_TOKEN"]),
    )
    with client(settings) as api:
        read = {"Authorization": f"Bearer {env['DUALRUN_API_READ_TOKEN']}"}
        write = {"Authorization": f"Bearer {env['DUALRUN_API_TOKEN']}"}
        status = api.get("/rollout", headers=read)
        assert status.status_code == 200
        assert {t["tld"] for t in status.json()["tlds"]} == set(settings.tlds)
        refused = api.post("/rollout/eu/next", headers=read, json={"force": True, "reason": "x"})
        assert refused.status_code == 403
        unknown = api.post("/rollout/xyz/next", headers=write, json={})
        assert unknown.status_code == 422
        moved = api.post("/rollout/eu/next", headers=write, json={"force": True, "reason": "api"})
        assert moved.status_code == 200 and moved.json()["applied"]
        assert moved.json()["to"] == {"mode": "shadow", "rollout": None}
        held = api.post("/rollout/eu/next", headers=write, json={})  # no run since the move
        assert held.status_code == 409 and held.json()["error"]["code"] == "rollout_refused"
        move = held.json()["move"]
        assert (move["verdict"], move["applied"]) == ("hold", False) and move["reasons"]
        assert move["reasons"][0] in held.json()["error"]["message"]
        dry = api.post("/rollout/eu/next", headers=write, json={"dry_run": True})
        assert dry.status_code == 200 and not dry.json()["applied"]  # a dry run only says
        floor = api.post("/rollout/com/back", headers=write, json={"reason": "api"})
        assert floor.status_code == 409 and floor.json()["move"]["to"] is None
        last = next(t for t in api.get("/rollout", headers=read).json()["tlds"] if t["tld"] == "eu")
        assert last["last_change"]["actor"] == "api:write-token"
        assert api.post("/rollout/guard", headers=write).json() == {"rolled_back": []}
