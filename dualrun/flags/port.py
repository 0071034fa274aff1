"""The one port every flag source implements, and the view of flags a source hands out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dualrun.flags.model import FlagSourceKind, FlagState, context

Evaluate = Callable[[str, dict[str, Any]], dict[str, Any]]
"""`UnleashClient.get_variant(flag, context)`: the SDK's own evaluation."""


@dataclass(frozen=True)
class FlagView:
    """Flags as one source has them now: their parsed state and the SDK evaluating them."""

    source: FlagSourceKind
    state: FlagState
    evaluate: Evaluate | None = None
    detail: str = ""

    def variant(self, domain: str, tld: str) -> str | None:
        """The variant (the mode) the flag gives this domain, or None when it is off for it."""
        if self.evaluate is None:
            return None
        result = self.evaluate(self.state.flag, context(domain, tld))
        return str(result["name"]) if result.get("enabled") else None


class FlagSource(Protocol):
    """A place flags come from: the Unleash server, a bootstrap file, or the chain of both."""

    def start(self) -> None:
        """Open connections / read files (never done at import or construction)."""

    def read(self) -> FlagView | None:
        """The flags this source has now, or None when it has none to offer."""

    def close(self) -> None:
        """Stop background work; harmless when never started."""


DEFAULT_VIEW_DETAIL = "no flags from any source: everything goes to legacy"


def default_view(flag: str) -> FlagView:
    """The last resort: no flag state at all, so every renewal goes to legacy."""
    return FlagView(FlagSourceKind.DEFAULT, FlagState(flag), None, DEFAULT_VIEW_DETAIL)
