"""`dualrun rollout next|back|status|guard`: the guarded rollout of a TLD's flag."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from dualrun.cli.context import EXIT_FAILURE, AppContext, emit, json_option, pass_app
from dualrun.rollout import actions
from dualrun.rollout.events import os_actor
from dualrun.rollout.guard import guard as run_guard
from dualrun.wiring import reconciler
from reconciler.model import Window
from reconciler.run import SWEEP_CHECKS
from renewals.db.pool import async_pool
from renewals.settings import Settings


def _label(step: dict[str, Any] | None) -> str:
    if step is None:
        return "-"
    return f"temporal {step['rollout']}%" if step["mode"] == "temporal" else str(step["mode"])


async def _with_pool(settings: Settings, job: Any) -> Any:
    pool = await async_pool(settings.dsn, max_size=2, name="dualrun-rollout")
    try:
        return await job(pool)
    finally:
        await pool.close()


@click.group("rollout")
def rollout() -> None:
    """Move a TLD's flag one step at a time on its verdict; roll back on critical findings.

    The ladder: legacy → shadow → temporal 1% → 5% → 25% → 50% → 100%. Every change is
    recorded as a rollout event (when, who, from, to, verdict, run)."""


@rollout.command("next")
@click.argument("tld")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--force", is_flag=True, help="Move even when the verdict is not ready.")
@click.option("--reason", help="Why (required with --force; recorded).")
@json_option
@pass_app
def next_cmd(
    app: AppContext, tld: str, dry_run: bool, force: bool, reason: str | None, as_json: bool
) -> int:
    """Move TLD exactly one step forward, only when its latest verdict is ready (exit 1 with
    the reasons otherwise)."""
    name = actions.check_tld(app.settings, tld)

    async def job(pool: Any) -> actions.Move:
        return await actions.advance(
            pool, app.settings, name, actor=os_actor(), dry_run=dry_run, force=force,
            reason=reason,
        )  # fmt: skip

    move = asyncio.run(_with_pool(app.settings, job))
    doc = move.as_dict()
    target = _label(doc["to"]) if move.after else "nothing further"
    if move.applied:
        word = "moved (forced)" if move.forced else "moved"
    elif dry_run and move.after and (move.verdict == "ready" or force):
        word = "would move"
    else:
        word = "not moved"
    lines = [f".{name}: {_label(doc['from'])} → {target}: {word} (verdict {move.verdict})"]
    lines += [f"  - {r}" for r in move.reasons]
    lines += [f"  [ ] {c}" for c in move.checklist]
    emit(doc, as_json, "\n".join(lines))
    ok = move.applied or (dry_run and move.after is not None and move.verdict == "ready")
    return 0 if ok else EXIT_FAILURE


@rollout.command("back")
@click.argument("tld")
@click.option("--reason", required=True, help="Why (recorded).")
@json_option
@pass_app
def back_cmd(app: AppContext, tld: str, reason: str, as_json: bool) -> int:
    """Move TLD one step back."""
    name = actions.check_tld(app.settings, tld)

    async def job(pool: Any) -> actions.Move:
        return await actions.step_back(pool, app.settings, name, actor=os_actor(), reason=reason)

    move = asyncio.run(_with_pool(app.settings, job))
    doc = move.as_dict()
    word = "moved back" if move.applied else "already on legacy"
    emit(doc, as_json, f".{name}: {_label(doc['from'])} → {_label(doc['to'])}: {word}")
    return 0 if move.applied else EXIT_FAILURE


@rollout.command("status")
@json_option
@pass_app
def status_cmd(app: AppContext, as_json: bool) -> None:
    """Per TLD: its step, its verdict and its last change."""

    async def job(pool: Any) -> list[dict[str, Any]]:
        return await actions.status(pool, app.settings)

    rows = asyncio.run(_with_pool(app.settings, job))
    lines = []
    for r in rows:
        change = r["last_change"]
        last = f"{change['at']} {change['action']} by {change['actor']}" if change else "no change"
        lines.append(f".{r['tld']:<6} {_label(r['step']):<14} {r['verdict']:<9} {last}")
    emit({"tlds": rows}, as_json, "\n".join(lines))


@rollout.command("guard")
@click.option("--once", is_flag=True, help="Run one duplicate sweep first, then the guard.")
@json_option
@pass_app
def guard_cmd(app: AppContext, once: bool, as_json: bool) -> None:
    """Flip each TLD with a new critical Temporal-side finding back to legacy (decided
    renewals stay pinned). The scheduler runs it after every duplicate sweep."""

    async def job() -> list[dict[str, Any]]:
        async with reconciler(app.settings) as rec:
            if once:
                await rec.run(Window.last(hours=24), "sweep", wait=True, selected=SWEEP_CHECKS)
            return [r.as_dict() for r in await run_guard(rec.pool, app.settings)]

    done = asyncio.run(job())
    lines = [
        f".{r['tld']}: rolled back to legacy from {_label(r['from'])}: {', '.join(r['reasons'])}"
        for r in done
    ]
    emit({"rolled_back": done}, as_json, "\n".join(lines) or "nothing to roll back")


COMMANDS = [rollout]
