"""`dualrun stack up|down|status`: the local stack (embedded PostgreSQL, Temporal, registry sim)."""

from __future__ import annotations

import time

import click

from dualrun.cli.context import AppContext, emit, json_option, pass_app
from ops import stack
from ops.processes import ServiceStatus
from renewals.errors import DualrunError


def _line(action: str, s: ServiceStatus) -> str:
    parts = [f"{s.name:<13}", f"{action:<9}", s.address]
    if s.pid is not None:
        parts.append(f"pid {s.pid}")
    if s.ui_url:
        parts.append(f"Web UI {s.ui_url}")
    return "  ".join(parts)


def _table(statuses: list[ServiceStatus]) -> str:
    rows = [("SERVICE", "MODE", "HEALTHY", "PID", "ADDRESS", "WEB UI")]
    rows += [
        (
            s.name,
            s.mode,
            "yes" if s.healthy else "NO",
            "-" if s.pid is None else str(s.pid),
            s.address,
            s.ui_url or "",
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


class StackUnhealthy(DualrunError):
    """Some service of the stack is not healthy (exit status 1)."""

    def __init__(self, statuses: list[ServiceStatus]) -> None:
        names = ", ".join(s.name for s in statuses if not s.healthy)
        super().__init__(f"stack: not healthy: {names}")


def _check(statuses: list[ServiceStatus]) -> None:
    if not all(s.healthy for s in statuses):
        raise StackUnhealthy(statuses)


def _document(statuses: list[ServiceStatus]) -> dict[str, object]:
    return {
        "healthy": all(s.healthy for s in statuses),
        "services": [s.as_dict() for s in statuses],
    }


@click.group("stack")
def stack_group() -> None:
    """The local stack: embedded PostgreSQL, Temporal dev server, registry simulator.

    Only the parts the settings leave embedded are started; a part configured to a real server
    (DUALRUN_DATABASE_URL, DUALRUN_TEMPORAL_ADDRESS, DUALRUN_REGISTRY_URL) is reported external.
    """


@stack_group.command("up")
@json_option
@pass_app
def up_cmd(app: AppContext, as_json: bool) -> None:
    """Start what is not running yet and wait until it is healthy (idempotent)."""
    began = time.monotonic()

    def progress(action: str, s: ServiceStatus) -> None:
        if not as_json:
            click.echo(_line(action, s))

    statuses = stack.up(app.settings, progress)
    seconds = round(time.monotonic() - began, 2)
    emit({**_document(statuses), "seconds": seconds}, as_json, f"stack up in {seconds} s")
    _check(statuses)


@stack_group.command("status")
@json_option
@pass_app
def status_cmd(app: AppContext, as_json: bool) -> None:
    """Mode, address, pid and health of each service; exit 1 unless all are healthy."""
    statuses = stack.status(app.settings)
    emit(_document(statuses), as_json, _table(statuses))
    _check(statuses)


@stack_group.command("down")
@json_option
@pass_app
def down_cmd(app: AppContext, as_json: bool) -> None:
    """Stop what `stack up` started (never an external server); harmless when nothing runs."""

    def progress(action: str, s: ServiceStatus) -> None:
        if not as_json:
            click.echo(_line(action, s))

    stopped = stack.down(app.settings, progress)
    text = f"stack down: stopped {', '.join(stopped)}" if stopped else "nothing was running"
    emit({"stopped": stopped}, as_json, text)


COMMANDS: list[click.Command] = [stack_group]
