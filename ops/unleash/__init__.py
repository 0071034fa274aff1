"""The Unleash server launcher (Node + `unleash-server` from npm) for tests and the local stack."""

from __future__ import annotations

from ops.unleash.install import (
    UnleashInstallFailed,
    UnleashNotInstalled,
    ensure_installed,
    installed,
    installed_version,
)
from ops.unleash.server import UnleashServer, UnleashStartError, create_database, drop_database

__all__ = [
    "UnleashInstallFailed",
    "UnleashNotInstalled",
    "UnleashServer",
    "UnleashStartError",
    "create_database",
    "drop_database",
    "ensure_installed",
    "installed",
    "installed_version",
]
