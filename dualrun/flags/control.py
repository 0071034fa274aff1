"""Changing the routing flag where it lives: the Unleash server when one is configured (admin
API, admin token from the settings), else the local bootstrap file the router reads."""

from __future__ import annotations

from dualrun.flags import server_url
from dualrun.flags.admin import UnleashAdmin
from dualrun.flags.local import LocalFlags, bootstrap_path
from dualrun.flags.model import RuleChange, TldRule
from renewals.errors import ConfigError
from renewals.settings import Settings


def admin_client(settings: Settings) -> UnleashAdmin:
    base = server_url(settings)
    assert base is not None
    if settings.unleash_admin_token is None:
        raise ConfigError(
            "DUALRUN_UNLEASH_ADMIN_TOKEN", "is required to change flags on the Unleash server"
        )
    return UnleashAdmin(
        base,
        settings.unleash_admin_token,
        settings.unleash_flag,
        environment=settings.unleash_environment,
    )


def set_rule(settings: Settings, change: RuleChange) -> tuple[TldRule, bool, str]:
    """Apply `change`; returns the rule written, whether anything changed, and where."""
    if server_url(settings) is not None:
        with admin_client(settings) as admin:
            rule, changed = admin.set_rule(change, settings.tlds)
        return rule, changed, "unleash"
    path = bootstrap_path(settings)
    rule, changed = LocalFlags(path, settings.unleash_flag).set_rule(change)
    return rule, changed, f"bootstrap file {path}"


def set_enabled(settings: Settings, enabled: bool) -> tuple[bool, str]:
    """Turn the flag on or off (off: the kill switch); returns (changed, where)."""
    if server_url(settings) is not None:
        with admin_client(settings) as admin:
            return admin.set_enabled(enabled), "unleash"
    path = bootstrap_path(settings)
    return LocalFlags(path, settings.unleash_flag).set_enabled(enabled), f"bootstrap file {path}"
