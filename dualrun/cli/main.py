"""`dualrun` entry point: the command group, every command registered, and the exit codes.

Exit codes: 0 ok, 2 bad input (a field or setting named), 1 failure. The process ends with
`os._exit` after flushing, because a process that used the temporalio client can abort at
interpreter exit (sdk-python issue 300) and must still report its true status.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click
import structlog

from dualrun.cli import (
    db_cmd,
    demo_cmd,
    flags_cmd,
    legacy_cmd,
    reconcile_cmd,
    relaunch_cmd,
    renewal_cmd,
    report_cmd,
    rollout_cmd,
    route_cmd,
    serve_cmd,
    sim_cmd,
    stack_cmd,
    worker_cmd,
)
from dualrun.cli.context import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, AppContext
from dualrun.wiring import with_stack_unleash
from renewals import logs
from renewals.errors import ConfigError, DualrunError, IdempotencyConflict, InvalidInput
from renewals.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="dualrun")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """dualrun: move domain renewals from a legacy engine to Temporal, one TLD at a time."""
    settings = with_stack_unleash(Settings.from_env())  # the stack's Unleash, when it runs
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    ctx.obj = AppContext(settings)


COMMAND_MODULES = (
    db_cmd,
    stack_cmd,
    sim_cmd,
    legacy_cmd,
    worker_cmd,
    reconcile_cmd,
    renewal_cmd,
    route_cmd,
    flags_cmd,
    serve_cmd,
    demo_cmd,
    report_cmd,
    relaunch_cmd,
    rollout_cmd,
)
for _module in COMMAND_MODULES:
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def run(args: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (never raises SystemExit)."""
    try:
        status = cli.main(args=args, prog_name="dualrun", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_FAILURE
    except click.ClickException as exc:
        exc.show()
        return (
            EXIT_BAD_INPUT
            if isinstance(exc, click.UsageError | click.BadParameter)
            else exc.exit_code
        )
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (InvalidInput, ConfigError, IdempotencyConflict) as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except DualrunError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a failure, reported on one line with its type, secrets masked
        structlog.get_logger("dualrun.cli").error("cli.failed", error=logs.redact_text(repr(exc)))
        return EXIT_FAILURE
    return status if isinstance(status, int) else EXIT_OK


def main() -> NoReturn:
    status = run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
