"""`dualrun flags show|set|on|off|export`: the routing flag, on the Unleash server when one is
configured (DUALRUN_UNLEASH_URL, admin token DUALRUN_UNLEASH_ADMIN_TOKEN) or the local stack runs
one, else in the local bootstrap file the router reads. Tokens are only ever sent as headers,
never printed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click
from psycopg_pool import AsyncConnectionPool

from dualrun.cli.context import AppContext, emit, json_option, pass_app
from dualrun.flags import server_url
from dualrun.flags.admin import UnleashAdmin
from dualrun.flags.control import set_enabled, set_rule
from dualrun.flags.model import RuleChange, TldRule, check_change
from dualrun.rollout.actions import current, verdicts
from dualrun.rollout.events import Position, RolloutEvent, os_actor, record
from dualrun.wiring import started_chain
from renewals.db.pool import async_pool
from renewals.errors import ConfigError, DualrunError, InvalidInput
from renewals.model import Mode
from renewals.settings import Settings


@click.group("flags")
def flags() -> None:
    """The routing flag: per TLD a mode (legacy, shadow, temporal) and a rollout percentage."""


def _rollout(raw: str | None) -> int | None:
    if raw is None:
        return None
    text = raw.strip().rstrip("%")
    if not text.lstrip("-").isdigit():
        raise InvalidInput("rollout", f"must be a whole percentage 0-100, got {raw[:20]!r}")
    return int(text)


@flags.command("show")
@json_option
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Per TLD: the mode and rollout the router uses now, and where they come from."""

    async def run() -> dict[str, Any]:
        async with started_chain(app.settings) as chain:
            view = chain.read()
        rows = []
        for tld in sorted(app.settings.tlds):
            rule = view.state.rule(tld)
            live = view.state.enabled and rule is not None
            rows.append(
                {
                    "tld": tld,
                    "mode": rule.mode.value if live and rule else Mode.LEGACY.value,
                    "rollout": rule.rollout if live and rule else None,
                    "source": view.source.value,
                }
            )
        return {
            "flag": view.state.flag,
            "source": view.source.value,
            "defined": view.state.defined,
            "enabled": view.state.enabled,
            "detail": view.detail,
            "tlds": rows,
        }

    doc = asyncio.run(run())
    lines = [
        f"flag {doc['flag']}: source {doc['source']}, "
        + ("enabled" if doc["enabled"] else "OFF (every new renewal goes to legacy)")
    ]
    lines += [
        f"  .{r['tld']:<6} {r['mode']:<9} "
        f"{'-' if r['rollout'] is None else str(r['rollout']) + '%':>5}  {r['source']}"
        for r in doc["tlds"]
    ]
    emit(doc, as_json, "\n".join(lines))


@flags.command("set")
@click.argument("tld")
@click.argument("mode")
@click.option("--rollout", "rollout_raw", metavar="PCT", help="Share of domains, 0-100.")
@json_option
@pass_app
def set_cmd(app: AppContext, tld: str, mode: str, rollout_raw: str | None, as_json: bool) -> None:
    """Route TLD in MODE (legacy, shadow, temporal) for --rollout percent of its domains.

    Idempotent: creates the flag, the context fields and the TLD's strategy when missing,
    updates them otherwise. Without --rollout a TLD already routed keeps its percentage.
    """
    change = check_change(tld, mode, _rollout(rollout_raw), app.settings.tlds)
    rule, changed, target = asyncio.run(_set_and_record(app.settings, change))
    doc = {**rule.as_dict(), "changed": changed, "target": target}
    word = "set" if changed else "unchanged"
    emit(doc, as_json, f".{rule.tld}: {rule.mode.value} {rule.rollout}% ({word}, {target})")


@asynccontextmanager
async def _recorder(settings: Settings, command: str) -> AsyncIterator[AsyncConnectionPool]:
    """The database every flag change is recorded in, opened before anything changes: a change
    that could not be recorded is not made."""
    try:
        pool = await async_pool(settings.dsn, max_size=1, name="dualrun-flags", timeout_s=5)
    except Exception as exc:
        raise DualrunError(
            f"flags {command} records every change in the database, which is unreachable "
            f"({type(exc).__name__}): nothing changed"
        ) from None
    try:
        yield pool
    finally:
        await pool.close()


async def _set_and_record(settings: Settings, change: RuleChange) -> tuple[TldRule, bool, str]:
    """Change the rule and record it as a rollout event, with the TLD's verdict on the latest
    full run at the time (and that run)."""
    async with _recorder(settings, "set") as pool, started_chain(settings) as chain:
        before = (await current(settings, chain))[change.tld]
        run_id, found = await verdicts(pool, settings, chain)
        readiness = found.get(change.tld)
        rule, changed, target = await asyncio.to_thread(set_rule, settings, change)
        if changed:
            verdict = readiness.verdict.value if readiness else None
            event = RolloutEvent(
                rule.tld, "set", os_actor(), before, Position.of(rule), verdict, run_id
            )
            await record(pool, event)
        return rule, changed, target


async def _switch_and_record(settings: Settings, enabled: bool) -> tuple[bool, str, list[str]]:
    """Turn the flag on or off, recorded as an event for each TLD it moves (its rule is not
    legacy): off moves it to legacy, on back to its rule. Returns (changed, where, TLDs)."""
    action = "on" if enabled else "off"
    async with _recorder(settings, action) as pool, started_chain(settings) as chain:
        rules = await current(settings, chain, as_routed=False)
        changed, target = await asyncio.to_thread(set_enabled, settings, enabled)
        moved = [tld for tld, at in rules.items() if at.mode != Mode.LEGACY] if changed else []
        legacy = Position(Mode.LEGACY)
        for tld in moved:
            before, after = (legacy, rules[tld]) if enabled else (rules[tld], legacy)
            reason = "flags on: the TLD's rule applies again" if enabled else "flags off"
            await record(pool, RolloutEvent(tld, action, os_actor(), before, after, reason=reason))
        return changed, target, moved


def _switch(app: AppContext, enabled: bool, as_json: bool) -> None:
    changed, target, moved = asyncio.run(_switch_and_record(app.settings, enabled))
    state = "on" if enabled else "off"
    doc = {
        "flag": app.settings.unleash_flag,
        "enabled": enabled,
        "changed": changed,
        "tlds_moved": moved,
    }
    emit(doc, as_json, f"flag {app.settings.unleash_flag} {state} ({target})")


@flags.command("on")
@json_option
@pass_app
def on_cmd(app: AppContext, as_json: bool) -> None:
    """Turn the routing flag on (TLD strategies apply again)."""
    _switch(app, True, as_json)


@flags.command("off")
@json_option
@pass_app
def off_cmd(app: AppContext, as_json: bool) -> None:
    """Kill switch: every new renewal goes to legacy; decided renewals stay where they are."""
    _switch(app, False, as_json)


@flags.command("export")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bootstrap file here (default: standard output).",
)
@pass_app
def export(app: AppContext, output: Path | None) -> None:
    """The server's flags as a bootstrap file (Unleash client-features JSON)."""
    if server_url(app.settings) is None:
        raise ConfigError("DUALRUN_UNLEASH_URL", "is not set: there is no server to export from")
    token = app.settings.unleash_client_token
    if token is None and app.settings.unleash_admin_token is None:
        raise ConfigError("DUALRUN_UNLEASH_CLIENT_TOKEN", "(or the admin token) is required")
    with _admin_for_export(app.settings) as admin:
        document = admin.export(token)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)
    click.echo(f"wrote {output}", err=True)


def _admin_for_export(settings: Settings) -> UnleashAdmin:
    base = server_url(settings)
    assert base is not None
    token = settings.unleash_admin_token or settings.unleash_client_token
    assert token is not None
    return UnleashAdmin(
        base, token, settings.unleash_flag, environment=settings.unleash_environment
    )


COMMANDS = [flags]
