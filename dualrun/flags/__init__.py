"""Feature flags for routing: one port, the Unleash server and bootstrap-file sources, the
fallback chain, and the operations behind `dualrun flags`."""

from __future__ import annotations

from dualrun.flags.chain import FlagChain
from dualrun.flags.local import bootstrap_path
from dualrun.flags.model import FlagSourceKind, FlagState, TldRule
from dualrun.flags.port import FlagSource, FlagView
from dualrun.flags.sources import BootstrapSource, UnleashServerSource
from renewals.settings import Settings

__all__ = [
    "FlagChain",
    "FlagSource",
    "FlagSourceKind",
    "FlagState",
    "FlagView",
    "TldRule",
    "build_chain",
    "sdk_url",
    "server_url",
]


def server_url(settings: Settings) -> str | None:
    """The Unleash server's base URL (DUALRUN_UNLEASH_URL, with or without a trailing /api)."""
    if not settings.unleash_url:
        return None
    url = settings.unleash_url.rstrip("/")
    return url[: -len("/api")] if url.endswith("/api") else url


def sdk_url(settings: Settings) -> str | None:
    base = server_url(settings)
    return None if base is None else f"{base}/api"


def build_chain(settings: Settings, *, refresh_s: int | None = None) -> FlagChain:
    """The router's flag sources from the settings; nothing is contacted until `start()`."""
    url = sdk_url(settings)
    server = (
        UnleashServerSource(
            url,
            settings.unleash_client_token or settings.unleash_admin_token,
            settings.unleash_flag,
            app_name=settings.unleash_app_name,
            environment=settings.unleash_environment,
            refresh_s=refresh_s or settings.unleash_refresh_s,
        )
        if url
        else None
    )
    bootstrap = BootstrapSource(
        bootstrap_path(settings), settings.unleash_flag, app_name=settings.unleash_app_name
    )
    return FlagChain(settings.unleash_flag, server, bootstrap)
