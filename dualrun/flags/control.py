"""Changing the routing flag where it lives: the Unleash server when one is configured or the
local stack runs one (admin API, admin token from the settings), else the local bootstrap file
the router reads. The stack's server is seeded from the bootstrap file and saved back to it.

A change on the server returns once the SDKs' view (`/api/client/features`, which Unleash
serves from a cache refreshed about every second) shows it, so `flags show` and the routers
see what `flags set` just said."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from dualrun.flags import server_url
from dualrun.flags.admin import UnleashAdmin
from dualrun.flags.local import LocalFlags, bootstrap_path
from dualrun.flags.model import FlagState, RuleChange, TldRule, parse_state
from renewals.errors import ConfigError
from renewals.files import file_lock
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


# -- the local stack's Unleash: its flags carried over from and back to the bootstrap file ----
def seed_server(settings: Settings) -> int | None:
    """Load the bootstrap file's routing flag into an Unleash server that has none (the stack's,
    on a fresh database), so routing carries on as the file had it. Returns the rules written
    (None: the server already has the flag, or the file has none)."""
    local = LocalFlags(bootstrap_path(settings), settings.unleash_flag).state()
    with admin_client(settings) as admin:
        on_server = parse_state(admin.export(settings.unleash_client_token), local.flag)
        if on_server.defined or not local.defined:
            return None
        wanted = {t: (r.mode, r.rollout) for t, r in local.rules.items() if t in settings.tlds}
        for tld, (mode, rollout) in sorted(wanted.items()):
            admin.set_rule(RuleChange(tld, mode, rollout), settings.tlds)
        admin.set_enabled(local.enabled)

        def shows(state: FlagState) -> bool:
            seen = {t: (r.mode, r.rollout) for t, r in state.rules.items()}
            return state.enabled == local.enabled and seen == wanted

        _until_visible(admin, settings, shows)
    log.info("flags.seeded", flag=local.flag, rules=len(wanted), enabled=local.enabled)
    return len(wanted)


def save_to_bootstrap(settings: Settings) -> Path | None:
    """Write the server's flags to the default bootstrap file (a DUALRUN_FLAGS_BOOTSTRAP one is
    never written), so the router's offline fallback is what Unleash said last. Returns it."""
    if settings.flags_bootstrap is not None:
        return None
    with admin_client(settings) as admin:
        document = admin.export(settings.unleash_client_token)
    path = bootstrap_path(settings, seed=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_suffix(".lock")):
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    log.info("flags.saved", flag=settings.unleash_flag, path=str(path))
    return path
