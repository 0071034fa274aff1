"""`dualrun stack up|down|status`: the local stack (embedded PostgreSQL, Temporal, registry sim,
Unleash)."""

from __future__ import annotations

import time

import click

from dualrun.cli.context import AppContext, emit, json_option, pass_app
from dualrun.wiring import stack_down, stack_up
from ops import stack
from ops.processes import ServiceStatus
from renewals.errors import DualrunError


def _ui(s: ServiceStatus) -> str:
    """The Web UI and its login, e.g. `http://127.0.0.1:4242 (login admin / unleash4all)`."""
    if not s.ui_url:
        return ""
    return f"{s.ui_url} (login {s.login})" if s.login else s.ui_url


def _line(action: str, s: ServiceStatus) -> str:
    if s.mode == "off":
        return f"{s.name:<13}  {action:<9}  {s.note or ''}".rstrip()
    parts = [f"{s.name:<13}", f"{action:<9}", s.address]
    if s.pid is not None:
        parts.append(f"pid {s.pid}")
    if s.ui_url:
        parts.append(f"Web UI {_ui(s)}")
    if s.note:
        parts.append(s.note)
    return "  ".join(parts)


def _table(statuses: list[ServiceStatus]) -> str:
    rows = [("SERVICE", "MODE", "HEALTHY", "PID", "ADDRESS", "WEB UI")]
    rows += [
        (
            s.name,
            s.mode,
            "-" if s.mode == "off" else "yes" if s.healthy else "NO",
            "-" if s.pid is None else str(s.pid),
            s.address,
            _ui(s),
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(table + [f"{s.name}: {s.note}" for s in statuses if s.note])


class StackUnhealthy(DualrunError):
    """Some service of the stack is not healthy (exit status 1)."""

    def __init__(self, statuses: list[ServiceStatus]) -> None:
        names = ", ".join(s.name for s in statuses if not s.ok)
        super().__init__(f"stack: not healthy: {names}")


def _check(statuses: list[ServiceStatus]) -> None:
    if not all(s.ok for s in statuses):
        raise StackUnhealthy(statuses)


def _document(statuses: list[ServiceStatus]) -> dict[str, object]:
    """`healthy`: every part is, but an optional one deliberately not run (mode `off`)."""
    return {
        "healthy": all(s.ok for s in statuses),
        "services": [s.as_dict() for s in statuses],
    }


@click.group("stack")
def stack_group() -> None:
    """The local stack: embedded PostgreSQL, Temporal dev server, registry simulator, Unleash.

    Only the parts the settings leave embedded are started; a part configured to a real server
    (DUALRUN_DATABASE_URL, DUALRUN_TEMPORAL_ADDRESS, DUALRUN_REGISTRY_URL, DUALRUN_UNLEASH_URL)
    is reported external. Unleash runs when Node >= 20 is on PATH; without it, flags come from
    the bootstrap file.
    """


@stack_group.command("up")
@click.option(
    "--no-unleash",
    is_flag=True,
    help="Do not run the Unleash server (stopped if it runs): flags from the bootstrap file.",
)
@json_option
@pass_app
def up_cmd(app: AppContext, no_unleash: bool, as_json: bool) -> None:
    """Start what is not running yet and wait until it is healthy (idempotent).

    The Unleash server needs Node >= 20 (`npm ci` in ops/unleash on first use); the flags of the
    bootstrap file are loaded into it when it has none.
    """
    began = time.monotonic()

    def progress(action: str, s: ServiceStatus) -> None:
        if not as_json:
            click.echo(_line(action, s))

    statuses, _ = stack_up(app.settings, progress, unleash=not no_unleash)
    seconds = round(time.monotonic() - began, 2)
    emit({**_document(statuses), "seconds": seconds}, as_json, f"stack up in {seconds} s")
    _check(statuses)


@stack_group.command("status")
@json_option
@pass_app
def status_cmd(app: AppContext, as_json: bool) -> None:
    """Mode, address, pid, health, Web UI and login of each service; exit 1 unless all are
    healthy (a part reported `off`, such as Unleash without Node, is not run on purpose)."""
    statuses = stack.status(app.settings)
    emit(_document(statuses), as_json, _table(statuses))
    _check(statuses)


@stack_group.command("down")
@json_option
@pass_app
def down_cmd(app: AppContext, as_json: bool) -> None:
    """Stop what `stack up` started (never an external server); harmless when nothing runs.

    The stack's Unleash flags are saved to the bootstrap file first.
    """

    def progress(action: str, s: ServiceStatus) -> None:
        if not as_json:
            click.echo(_line(action, s))

    stopped = stack_down(app.settings, progress)
    text = f"stack down: stopped {', '.join(stopped)}" if stopped else "nothing was running"
    emit({"stopped": stopped}, as_json, text)


COMMANDS: list[click.Command] = [stack_group]
