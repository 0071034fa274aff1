"""Options several long-running commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def metrics_options(command: F) -> F:
    """`--metrics-port` (off unless given) and `--metrics-host` (loopback unless given)."""
    command = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Interface of the /metrics listener.",
    )(command)
    return click.option(
        "--metrics-port",
        type=click.IntRange(1, 65535),
        default=None,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics (default: off).",
    )(command)
