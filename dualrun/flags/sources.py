"""Flag sources: the Unleash server (through UnleashClient) and a bootstrap file (offline).

Both hand the same client-features document to an UnleashClient and let the SDK evaluate it, so a
bootstrap exported from the server routes every domain exactly as the server does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import structlog
from UnleashClient.cache import BaseCache
from UnleashClient.clients.unleash_client import UnleashClient
from UnleashClient.constants import ETAG, FEATURES_URL
from UnleashClient.utils import InstanceAllowType

from dualrun.flags.model import FlagSourceKind, FlagState, parse_state
from dualrun.flags.port import FlagView
from renewals.env import Secret

log = structlog.get_logger(__name__)

OFFLINE_URL = "http://unleash.invalid/api"  # never contacted: bootstrap clients do not poll


class MemoryCache(BaseCache):
    """An in-process UnleashClient cache that notes when the server last answered.

    It never hands back an ETag, so every poll is a full fetch (a few hundred bytes per TLD):
    an answer then always writes the features, which is how a dead server is told apart from an
    unchanged one (Unleash 7 sends no ETag with its 304 answers). Nothing touches the disk, so
    any number of processes can route at once.
    """

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.features_written_at: float | None = None  # time.monotonic() of the last answer

    def bootstrap_from_dict(self, initial_config: dict[str, Any]) -> None:
        """As FileCache.bootstrap_from_dict: the SDK loads these features at construction."""
        self._data[FEATURES_URL] = json.dumps(initial_config)
        self.bootstrapped = True

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            if key == FEATURES_URL:
                self.features_written_at = time.monotonic()

    def mset(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._data.update(data)

    def get(self, key: str, default: Any | None = None) -> Any:
        if key == ETAG:
            return ""
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def destroy(self) -> None:
        self._data.clear()


def _quiet_sdk() -> None:
    """The SDK logs a traceback per failed poll; the chain reports fallbacks itself."""
    logging.getLogger("UnleashClient").setLevel(logging.CRITICAL)


class _Parsed:
    """Parse a features document once per distinct text."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        self._raw: str | None = None
        self._state = FlagState(flag)

    def state(self, raw: str) -> FlagState:
        if raw != self._raw:
            self._state = parse_state(json.loads(raw), self.flag)
            self._raw = raw
        return self._state


class UnleashServerSource:
    """The Unleash server, polled every `refresh_s` by UnleashClient.

    `read()` is `unleash` while the server answered within `stale_after_s`, `last-known` once it
    stops answering (the SDK keeps evaluating the last flags it saw), and None before any answer.
    """

    def __init__(
        self,
        url: str,
        token: Secret | None,
        flag: str,
        *,
        app_name: str = "dualrun",
        environment: str = "development",
        refresh_s: int = 1,
        request_timeout_s: int = 3,
    ) -> None:
        self.url = url
        self.flag = flag
        self._token = token
        self._app_name = app_name
        self._environment = environment
        self.refresh_s = refresh_s
        self.request_timeout_s = request_timeout_s
        self.stale_after_s = max(3.0, 3.0 * refresh_s)
        self._cache = MemoryCache()
        self._parsed = _Parsed(flag)
        self._client: UnleashClient | None = None

    def start(self) -> None:
        """Create the client and fetch once (a failed fetch is not an error: it is polled)."""
        if self._client is not None:
            return
        _quiet_sdk()
        headers = {"Authorization": self._token.reveal()} if self._token else {}
        self._client = UnleashClient(
            url=self.url,
            app_name=self._app_name,
            environment=self._environment,
            refresh_interval=self.refresh_s,
            request_timeout=self.request_timeout_s,
            request_retries=0,
            disable_metrics=True,
            disable_registration=True,
            custom_headers=headers,
            cache=self._cache,
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
        self._client.initialize_client()

    def seconds_since_answer(self) -> float | None:
        written = self._cache.features_written_at
        return None if written is None else time.monotonic() - written

    def read(self) -> FlagView | None:
        raw = self._cache.get(FEATURES_URL)
        if self._client is None or not raw:
            return None
        try:
            state = self._parsed.state(raw)
        except (ValueError, TypeError):
            return None
        age = self.seconds_since_answer()
        if age is not None and age <= self.stale_after_s:
            return FlagView(FlagSourceKind.UNLEASH, state, self._client.get_variant)
        detail = f"unleash has not answered for {age or 0:.1f} s: using the last flags seen"
        return FlagView(FlagSourceKind.LAST_KNOWN, state, self._client.get_variant, detail)

    def close(self) -> None:
        if self._client is not None:
            self._client.destroy()
            self._client = None


class BootstrapSource:
    """A client-features JSON file evaluated offline by UnleashClient; reread when it changes."""

    def __init__(
        self, path: Path, flag: str, *, app_name: str = "dualrun", recheck_s: float = 1.0
    ) -> None:
        self.path = path
        self.flag = flag
        self._app_name = app_name
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._stamp: tuple[int, int] | None = None
        self._view: FlagView | None = None
        self._client: UnleashClient | None = None

    def start(self) -> None:
        self.read()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load(self) -> FlagView | None:
        try:
            document = json.loads(self.path.read_text())
            state = parse_state(document, self.flag)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("router.flags.bootstrap_unreadable", path=str(self.path), error=str(exc))
            return None
        _quiet_sdk()
        cache = MemoryCache()
        cache.bootstrap_from_dict(document)
        client = UnleashClient(
            url=OFFLINE_URL,
            app_name=self._app_name,
            disable_metrics=True,
            disable_registration=True,
            cache=cache,
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
        if self._client is not None:
            self._client.destroy()
        self._client = client
        detail = f"bootstrap file {self.path}"
        return FlagView(FlagSourceKind.BOOTSTRAP, state, client.get_variant, detail)

    def read(self) -> FlagView | None:
        now = time.monotonic()
        if now - self._checked_at < self.recheck_s:
            return self._view
        with self._lock:
            self._checked_at = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                self._view = None if stamp is None else self._load()
            return self._view

    def close(self) -> None:
        if self._client is not None:
            self._client.destroy()
            self._client = None
