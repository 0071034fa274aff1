"""`rollout next` judges each step on evidence gathered at that step: full runs whose window
starts after the TLD's flag last changed (one for a step, N at temporal 100% for complete),
and it refuses on a blocked verdict. Real PostgreSQL, Temporal dev server and flag file."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.harness import Cli, Harness
from tests.integration.test_rollout import (
    EXPIRY,
    cli,
    env,
    mode_of,
    raw,
    receiver,
    run,
    stray_charge,
)

pytestmark = pytest.mark.integration
__all__ = ["cli", "env", "receiver"]  # the fixtures this module uses


async def renew(h: Harness, cli: Cli, *domains: str) -> list[dict[str, Any]]:
    """Submit each domain through the router (Temporal at 100%) and wait for its workflow."""
    done = []
    async with h.workers():
        for domain in domains:
            code, sub = await run(cli, "submit", "--domain", domain, "--years", "1",
                "--current-expiry", EXPIRY.isoformat(), "--customer", "cust-1",
            )  # fmt: skip
            assert code == 0 and sub["engine"] == "temporal", sub
            await h.result(sub["idempotency_key"])
            done.append(sub)
    return done


async def set_flag(cli: Cli, tld: str, mode: str, rollout: str) -> dt.datetime:
    """`flags set` (a rollout event); returns a moment at or after that event."""
    code, _, err = await raw(cli, "flags", "set", tld, mode, "--rollout", rollout)
    assert code == 0, err
    return dt.datetime.now(dt.UTC)


async def test_each_step_needs_a_run_after_the_last_change(
    h: Harness, cli: Cli, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run over a window from before the change does not judge the step; one after it does;
    the move is a change, so `rollout next` right again refuses on the same evidence."""
    monkeypatch.setenv("DUALRUN_REPORT_MIN_VOLUME", "0")  # the runs' windows alone decide
    h.seed("fr", "ev1.fr", "ev2.fr", expiry=EXPIRY)
    changed = await set_flag(cli, "fr", "temporal", "100")  # all of .fr on Temporal first
    await renew(h, cli, "ev1.fr")
    await set_flag(cli, "fr", "temporal", "5")  # then back to 5%: the step to judge
    code, _ = await run(cli, "reconcile", "--since", changed.isoformat())  # starts before 5%
    assert code == 0
    code, held = await run(cli, "rollout", "next", "fr")
    assert code == 1 and held["verdict"] == "hold" and not held["applied"]
    assert any("this run's window starts at" in r for r in held["reasons"]), held["reasons"]
    assert mode_of(env, "fr") == ("temporal", 5)

    at_five = dt.datetime.now(dt.UTC)
    code, _ = await run(cli, "reconcile", "--since", at_five.isoformat())  # nothing new in it
    code, moved = await run(cli, "rollout", "next", "fr")
    assert code == 0 and moved["applied"] and moved["to"] == {"mode": "temporal", "rollout": 25}
    assert any("judged on full runs since the flag changed" in r for r in moved["reasons"])
    code, again = await run(cli, "rollout", "next", "fr")  # the same evidence, a new step
    assert code == 1 and again["verdict"] == "hold" and not again["applied"]
    assert mode_of(env, "fr") == ("temporal", 25)


async def test_complete_needs_n_clean_runs_at_100(
    h: Harness, cli: Cli, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At temporal 100% with DUALRUN_REPORT_RUNS=2: one clean run since the change holds
    ("1 of 2"), the second makes it complete."""
    monkeypatch.setenv("DUALRUN_REPORT_RUNS", "2")
    h.seed("fr", "n1.fr", expiry=EXPIRY)
    since = await set_flag(cli, "fr", "temporal", "100")
    await renew(h, cli, "n1.fr")
    verdicts = []
    for _ in range(2):
        code, _ = await run(cli, "reconcile", "--since", since.isoformat())
        assert code == 0
        code, status = await run(cli, "rollout", "status")
        fr = next(t for t in status["tlds"] if t["tld"] == "fr")
        verdicts.append((fr["verdict"], fr["reasons"]))
    assert verdicts[0][0] == "hold" and "1 of 2 clean runs at temporal 100%" in verdicts[0][1]
    assert verdicts[1][0] == "complete" and "2 of 2 clean runs at temporal 100%" in verdicts[1][1]


async def test_next_refuses_on_blocked(h: Harness, cli: Cli, env: dict[str, str]) -> None:
    """A critical Temporal-side finding (a double charge) in a run after the change: blocked,
    `rollout next` exits 1 with it among the reasons and moves nothing."""
    h.seed("de", "blk.de", expiry=EXPIRY)
    await set_flag(cli, "de", "temporal", "100")
    (first,) = await renew(h, cli, "blk.de")
    since = await set_flag(cli, "de", "temporal", "5")
    await stray_charge(h, first, "stray-de")  # charged twice under one renewal's key
    code, _ = await run(cli, "reconcile", "--since", since.isoformat())
    assert code == 0
    code, refused = await run(cli, "rollout", "next", "de")
    assert code == 1 and refused["verdict"] == "blocked" and not refused["applied"]
    assert any("critical finding" in r for r in refused["reasons"]), refused["reasons"]
    assert mode_of(env, "de") == ("temporal", 5)
