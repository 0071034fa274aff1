"""`dualrun demo`: the month-start burst on the embedded stack (or on configured servers)."""

from __future__ import annotations

import os

import click

from dualrun.cli.context import AppContext, emit, pass_app
from dualrun.demo.plan import DemoConfig
from dualrun.demo.run import DemoResult, run_demo
from renewals import logs


def _text(result: DemoResult) -> str:
    doc = result.document
    lines = [
        "",
        f"demo {doc['run']} in {doc['duration_s']} s",
        "engine     count  done  failed  success  p50      p95",
    ]
    for name, e in doc["engines"].items():
        rate = "-" if e["success_rate"] is None else f"{e['success_rate'] * 100:.1f}%"
        p50 = "-" if e["p50_s"] is None else f"{e['p50_s']:.2f} s"
        p95 = "-" if e["p95_s"] is None else f"{e['p95_s']:.2f} s"
        lines.append(
            f"{name:<10} {e['count']:>5} {e['done']:>5} {e['failed']:>7}  {rate:>7}  {p50:<8} {p95}"
        )
    lines.append(f"shadow plans recorded: {doc['shadow_plans']}")
    lines.append(
        "findings: " + (", ".join(f"{k} {v}" for k, v in doc["findings"].items()) or "none")
    )
    lines += [f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in doc["invariants"].items()]
    runs = doc["readiness_runs"]
    lines.append(
        f"readiness (dualrun rollout status / next), judged on {runs['judged_on']} run (demo); "
        f"production default {runs['production_default']}:"
    )
    lines += [
        f"  .{tld:<5} {r['verdict']:<9} rollout next {r['rollout_next']}"
        for tld, r in doc["rollout"].items()
    ]
    lines.append(f"report: {doc['report']}")
    if doc.get("temporal_ui"):
        lines.append(f"Temporal Web UI: {doc['temporal_ui']} (stack left up: dualrun stack down)")
    if doc.get("unleash_ui"):
        lines.append(f"Unleash admin UI: {doc['unleash_ui']} (login {doc['unleash_login']})")
    return "\n".join(lines)


@click.command("demo")
@click.option(
    "--renewals",
    type=click.IntRange(10, 100_000),
    default=DemoConfig.renewals,
    show_default=True,
    help="Domains seeded and renewed, spread over .fr .info .com .de .eu.",
)
@click.option(
    "--keep", is_flag=True, help="Leave the stack up afterwards (Temporal and Unleash Web UIs)."
)
@click.option(
    "--no-unleash",
    is_flag=True,
    help="Do not run the Unleash server: flags from the bootstrap file.",
)
@click.option("--seed", type=int, default=None, help="Seed of the generated burst.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def demo(
    app: AppContext,
    renewals: int,
    keep: bool,
    no_unleash: bool,
    seed: int | None,
    as_json: bool,
) -> None:
    """A month-start burst through the router and both engines, reconciled; exit 0 only when
    every renewal finished, the Temporal side renewed and charged nothing twice, and every
    injected legacy duplicate was found."""
    config = (
        DemoConfig(renewals=renewals) if seed is None else DemoConfig(renewals=renewals, seed=seed)
    )

    if "DUALRUN_LOG_LEVEL" not in os.environ:  # the demo narrates; logs only when asked for
        logs.configure("error", app.settings.log_format, app.settings.secrets())

    def say(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    def notice(line: str) -> None:  # a part not run (Unleash without Node): said, --json or not
        click.echo(line, err=True)

    result = run_demo(app.settings, config, keep, say, unleash=not no_unleash, notice=notice)
    emit(result.document, as_json, _text(result))
    if not result.ok:
        raise click.exceptions.Exit(1)


COMMANDS = [demo]
