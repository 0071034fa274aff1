"""Changing the routing flag where it lives: the Unleash server when one is configured (admin
API, admin token from the settings), else the local bootstrap file the router reads.

A change on the server returns once the SDKs' view (`/api/client/features`, which Unleash
serves from a cache refreshed about every second) shows it, so `flags show` and the routers
see what `flags set` just said."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from dualrun.flags import server_url
from dualrun.flags.admin import UnleashAdmin
from dualrun.flags.local import LocalFlags, bootstrap_path
from dualrun.flags.model import FlagState, RuleChange, TldRule, parse_state
from renewals.errors import ConfigError
from renewals.settings import Settings

log = structlog.get_logger(__name__)


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


VISIBLE_WITHIN_S = 10.0


def _until_visible(
    admin: UnleashAdmin, settings: Settings, shows: Callable[[FlagState], bool]
) -> None:
    """Wait until the SDKs' view of the flag shows the change (logged, not fatal, past
    VISIBLE_WITHIN_S: the server has it, its cache will follow)."""
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    while True:
        document = admin.export(settings.unleash_client_token)
        if shows(parse_state(document, settings.unleash_flag)):
            return
        if time.monotonic() > deadline:
            log.warning(
                "flags.not_yet_visible", flag=settings.unleash_flag, within_s=VISIBLE_WITHIN_S
            )
            return
        time.sleep(0.2)


def set_rule(settings: Settings, change: RuleChange) -> tuple[TldRule, bool, str]:
    """Apply `change`; returns the rule written, whether anything changed, and where."""
    if server_url(settings) is not None:
        with admin_client(settings) as admin:
            rule, changed = admin.set_rule(change, settings.tlds)
            _until_visible(admin, settings, lambda state: state.rule(rule.tld) == rule)
        return rule, changed, "unleash"
    path = bootstrap_path(settings)
    rule, changed = LocalFlags(path, settings.unleash_flag).set_rule(change)
    return rule, changed, f"bootstrap file {path}"


def set_enabled(settings: Settings, enabled: bool) -> tuple[bool, str]:
    """Turn the flag on or off (off: the kill switch); returns (changed, where)."""
    if server_url(settings) is not None:
        with admin_client(settings) as admin:
            changed = admin.set_enabled(enabled)
            _until_visible(admin, settings, lambda state: state.enabled == enabled)
            return changed, "unleash"
    path = bootstrap_path(settings)
    return LocalFlags(path, settings.unleash_flag).set_enabled(enabled), f"bootstrap file {path}"
