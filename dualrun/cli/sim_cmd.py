"""`dualrun registry-sim serve|seed|config|reset`: the registry simulator and its controls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import click
import psycopg

from dualrun.cli.context import AppContext, emit, pass_app
from ops.registry_sim import migrate_tables
from ops.registry_sim.admin import SimAdmin, SimAdminError, SimUnreachable
from ops.registry_sim.server import serve

_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _tld(app: AppContext, raw: str) -> str:
    tld = raw.strip().lower().lstrip(".")
    if tld not in app.settings.tlds:
        known = ", ".join(sorted(app.settings.tlds))
        raise click.BadParameter(f"unknown TLD {raw!r} (known: {known})", param_hint="--tld")
    return tld


def _admin_call(app: AppContext, call: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Run one SimAdmin call; 4xx -> BadParameter naming the option (exit 2), else exit 1."""
    try:
        with SimAdmin.for_settings(app.settings) as admin:
            return call(admin)
    except SimUnreachable as exc:
        raise click.ClickException(f"{exc} (is `dualrun registry-sim serve` running?)") from None
    except SimAdminError as exc:
        if 400 <= exc.status < 500:
            hint = f"--{exc.field.replace('_', '-')}" if exc.field else None
            raise click.BadParameter(str(exc), param_hint=hint) from None
        raise click.ClickException(str(exc)) from None


@click.group("registry-sim")
def registry_sim() -> None:
    """The registry simulator: EPP-like registries with rate limits and injectable faults."""


@registry_sim.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port (default: DUALRUN_REGISTRY_SIM_PORT, 8710).",
)
@pass_app
def serve_cmd(app: AppContext, host: str, port: int | None) -> None:
    """Migrate the simulator's tables, then serve until interrupted."""
    try:
        migrate_tables(app.settings.dsn)
    except psycopg.OperationalError:
        raise click.ClickException(
            "PostgreSQL is not reachable (embedded stack: `dualrun stack up`)"
        ) from None
    port = port or app.settings.registry_sim_port
    try:
        serve(host, port, app.settings)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@registry_sim.command("seed")
@click.option("--tld", required=True, help="Registry to seed, e.g. fr.")
@click.option("--count", required=True, type=click.IntRange(1, 1_000_000), help="How many domains.")
@click.option(
    "--prefix", default="dom-", show_default=True, help="Names are {prefix}{n:06d}.{tld}."
)
@click.option("--start", type=click.IntRange(0), default=1, show_default=True, help="First n.")
@click.option("--expiry-from", type=_DATE, default=None, help="Earliest expiry (default tomorrow).")
@click.option("--expiry-to", type=_DATE, default=None, help="Latest expiry (default +1 year).")
@click.option("--premium-share", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--prohibited-share", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--seed", "rng_seed", type=int, default=None, help="RNG seed (reproducible data).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def seed_cmd(
    app: AppContext,
    tld: str,
    count: int,
    prefix: str,
    start: int,
    expiry_from: dt.datetime | None,
    expiry_to: dt.datetime | None,
    premium_share: float,
    prohibited_share: float,
    rng_seed: int | None,
    as_json: bool,
) -> None:
    """Generate COUNT domains in the running simulator (upsert: re-seeding resets expiries)."""
    tld = _tld(app, tld)
    lo = expiry_from.date() if expiry_from else None
    hi = expiry_to.date() if expiry_to else None
    if lo and hi and lo > hi:
        raise click.BadParameter("is before --expiry-from", param_hint="--expiry-to")
    result = _admin_call(
        app,
        lambda admin: admin.seed_generated(
            tld,
            count,
            prefix=prefix,
            start=start,
            expiry_from=lo,
            expiry_to=hi,
            premium_share=premium_share,
            prohibited_share=prohibited_share,
            seed=rng_seed,
        ),
    )
    text = f".{tld}: seeded {result['seeded']} domains ({result['first']} .. {result['last']})"
    emit(result, as_json, text)


@registry_sim.command("config")
@click.option("--tld", required=True, help="Registry to configure, e.g. fr.")
@click.option("--strict/--lenient", default=None, help="Check curExpDate on renew, or ignore it.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), help="Requests per second.")
@click.option("--burst", type=click.IntRange(1), help="Token bucket size.")
@click.option("--latency-ms", type=click.FloatRange(0, 600_000), help="Added latency.")
@click.option("--jitter-ms", type=click.FloatRange(0, 600_000), help="Latency jitter (+/-).")
@click.option("--error-rate", type=click.FloatRange(0, 1), help="Share answered 503 (1 = outage).")
@click.option(
    "--commit-timeout-rate",
    type=click.FloatRange(0, 1),
    help="Share of renews committed, then answered only after --hold-s.",
)
@click.option("--hold-s", type=click.FloatRange(0, 3600), help="How long to hold (default 30).")
@click.option("--seed", "rng_seed", type=int, help="Seed of the fault RNG (deterministic).")
@click.option("--price-cents", type=click.IntRange(0), help="Standard yearly price, euro cents.")
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as JSON.")
@pass_app
def config_cmd(app: AppContext, /, tld: str, as_json: bool, **options: Any) -> None:
    """Show a registry's configuration, or change the given settings (kept across restarts)."""
    tld = _tld(app, tld)
    names = {"rate": "rate_limit", "jitter_ms": "latency_jitter_ms", "rng_seed": "seed"}
    changes = {names.get(k, k): v for k, v in options.items() if v is not None}
    if changes:
        result = _admin_call(app, lambda admin: admin.configure(tld, **changes))
    else:
        result = _admin_call(app, lambda admin: admin.config(tld))
    text = " ".join(f"{k}={result[k]}" for k in sorted(result) if k != "tld")
    emit(result, as_json, f".{tld}: {text}")


@registry_sim.command("reset")
@click.option("--tld", default=None, help="Only this registry (default: all).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def reset_cmd(app: AppContext, tld: str | None, yes: bool, as_json: bool) -> None:
    """Forget domains, renewals, configuration and traffic of the simulator."""
    target = _tld(app, tld) if tld is not None else None
    if not yes:
        click.confirm(f"reset {'.' + target if target else 'every registry'}?", abort=True)
    result = _admin_call(app, lambda admin: admin.reset(target))
    emit(result, as_json, f"reset: {', '.join(result['reset'])}")


COMMANDS: list[click.Command] = [registry_sim]
