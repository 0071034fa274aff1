"""Typed values read from environment variables; each error names its variable.

The parsing half of the settings: `renewals.settings` assembles the frozen `Settings` from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from renewals.errors import ConfigError


class Secret:
    """A value that must never be printed: its repr and str are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class EnvReader:
    """Reads one environment: blank counts as unset; a bad value raises `ConfigError`."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, *names: str) -> str | None:
        for name in names:
            value = self.env.get(name)
            if value is not None and value.strip() != "":
                return value.strip()
        return None

    def secret(self, *names: str) -> Secret | None:
        value = self.get(*names)
        return None if value is None else Secret(value)

    def integer(self, name: str, default: int, low: int = 1, high: int = 65535) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(name, f"must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {raw!r}") from None
        if value <= 0:
            raise ConfigError(name, f"must be positive, got {value}")
        return value

    def fraction(self, name: str, default: float) -> float:
        """A share between 0 and 1 (`0.02`, or a percentage `2%`)."""
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            raise ConfigError(name, f"must be a share between 0 and 1, got {raw!r}") from None
        if not 0 <= value <= 1:
            raise ConfigError(name, f"must be between 0 and 1 (or 0% and 100%), got {raw!r}")
        return value

    def maybe_integer(self, name: str, low: int, high: int) -> int | None:
        return None if self.get(name) is None else self.integer(name, low, low, high)

    def percent(self, name: str) -> float | None:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            value = float(raw.rstrip("%"))
        except ValueError:
            raise ConfigError(name, f"must be a percentage, got {raw!r}") from None
        if not 0 <= value <= 100:
            raise ConfigError(name, f"must be between 0 and 100, got {value}")
        return value

    def http_url(self, name: str) -> str | None:
        """An http(s) base URL, without its trailing slash."""
        raw = self.get(name)
        if raw is None:
            return None
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(name, f"must be an http:// or https:// URL, got {raw[:80]!r}")
        return raw.rstrip("/")

    def boolean(self, *names: str) -> bool:
        raw = self.get(*names)
        if raw is None:
            return False
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(names[0], f"must be true or false, got {raw!r}")

    def mapping(self, name: str) -> dict[str, str]:
        """`fr=40,info=20` → {"fr": "40", "info": "20"}."""
        raw = self.get(name)
        if raw is None:
            return {}
        out: dict[str, str] = {}
        for item in raw.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(name, f"entries must look like tld=value, got {item.strip()!r}")
            out[key.strip().lower().lstrip(".")] = value.strip()
        return out

    def numbers(self, name: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, raw in self.mapping(name).items():
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(name, f"{key}: must be a number, got {raw!r}") from None
            if value <= 0:
                raise ConfigError(name, f"{key}: must be positive, got {value}")
            out[key] = value
        return out
