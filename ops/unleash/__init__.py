"""The Unleash server launcher (Node + `unleash-server` from npm) for tests and the local stack."""

from __future__ import annotations

from ops.unleash.server import (
    UnleashNotInstalled,
    UnleashServer,
    UnleashStartError,
    create_database,
    drop_database,
    ensure_installed,
    installed_version,
)

__all__ = [
    "UnleashNotInstalled",
    "UnleashServer",
    "UnleashStartError",
    "create_database",
    "drop_database",
    "ensure_installed",
    "installed_version",
]
