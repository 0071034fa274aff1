"""The routing flag in Unleash's client-features format: reading it, and building its strategies.

One flag (e.g. `dualrun.renewals`) holds one `flexibleRollout` strategy per TLD: a `tld IN [..]`
constraint, the rollout percentage sticky on the `domain` context field, and the mode as the
strategy's single variant. The same JSON document is what the Unleash server serves to SDKs
(`GET /api/client/features`) and what a bootstrap file holds, so both evaluate identically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from UnleashClient.utils import normalized_hash

from renewals.errors import InvalidInput
from renewals.model import Mode

TLD_FIELD = "tld"
DOMAIN_FIELD = "domain"  # the stickiness field: every evaluation context carries it
STRATEGY = "flexibleRollout"


class FlagSourceKind(StrEnum):
    """Where the flag state behind a decision came from (the fallback chain, in order)."""

    UNLEASH = "unleash"  # the Unleash server (configured, or the local stack's)
    LAST_KNOWN = "last-known"
    BOOTSTRAP = "bootstrap"
    DEFAULT = "default"


@dataclass(frozen=True)
class TldRule:
    """The flag's strategy for one TLD."""

    tld: str
    mode: Mode
    rollout: int
    group_id: str

    def bucket(self, domain: str) -> int:
        return bucket_of(domain, self.group_id)

    def as_dict(self) -> dict[str, Any]:
        return {"tld": self.tld, "mode": self.mode.value, "rollout": self.rollout}


def bucket_of(domain: str, group_id: str) -> int:
    """Unleash's stickiness bucket 0-99 (murmur3 of `groupId:domain`, as the SDK normalises it).

    A flexibleRollout at R% includes the domain exactly when its bucket is below R, so raising R
    never moves a domain out.
    """
    return int(normalized_hash(domain, group_id)) - 1


@dataclass(frozen=True)
class FlagState:
    """What one client-features document says about the routing flag."""

    flag: str
    defined: bool = False
    enabled: bool = False
    rules: Mapping[str, TldRule] = field(default_factory=dict)
    revision: int | None = None

    def rule(self, tld: str) -> TldRule | None:
        return self.rules.get(tld)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "defined": self.defined,
            "enabled": self.enabled,
            "revision": self.revision,
            "tlds": {tld: rule.as_dict() for tld, rule in sorted(self.rules.items())},
        }


def _mode_of(strategy: Mapping[str, Any]) -> Mode | None:
    variants = strategy.get("variants") or []
    if not variants:
        return None
    first = variants[0]
    payload = first.get("payload") or {}
    value = payload.get("value") or first.get("name")
    try:
        return Mode(str(value))
    except ValueError:
        return None


def _rollout_of(strategy: Mapping[str, Any]) -> int:
    raw = (strategy.get("parameters") or {}).get("rollout", "100")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return 0
    return max(0, min(100, math.floor(value))) if math.isfinite(value) else 0


def _tlds_of(strategy: Mapping[str, Any]) -> list[str]:
    for constraint in strategy.get("constraints") or []:
        if (
            constraint.get("contextName") == TLD_FIELD
            and constraint.get("operator") == "IN"
            and not constraint.get("inverted", False)
        ):
            return [str(v).lower() for v in constraint.get("values") or []]
    return []


def covers_tld(strategy: Mapping[str, Any], tld: str) -> bool:
    """Whether a strategy is the one for `tld` (its `tld IN [...]` constraint names it)."""
    return strategy.get("name") == STRATEGY and tld in _tlds_of(strategy)


def parse_state(document: Mapping[str, Any], flag: str) -> FlagState:
    """The routing flag's state in a client-features document (missing flag: not defined)."""
    feature = next(
        (f for f in document.get("features") or [] if f.get("name") == flag),
        None,
    )
    meta = document.get("meta") or {}
    revision = meta.get("revisionId") if isinstance(meta.get("revisionId"), int) else None
    if feature is None:
        return FlagState(flag, revision=revision)
    rules: dict[str, TldRule] = {}
    for strategy in feature.get("strategies") or []:
        if strategy.get("name") != STRATEGY or strategy.get("disabled"):
            continue
        mode = _mode_of(strategy)
        if mode is None:
            continue
        group_id = str((strategy.get("parameters") or {}).get("groupId") or flag)
        for tld in _tlds_of(strategy):
            rules.setdefault(tld, TldRule(tld, mode, _rollout_of(strategy), group_id))
    return FlagState(flag, True, bool(feature.get("enabled")), rules, revision)


# -- building what `flags set` writes --------------------------------------------------------
@dataclass(frozen=True)
class RuleChange:
    """A validated `flags set TLD MODE [--rollout PCT]` (rollout None: not given)."""

    tld: str
    mode: Mode
    rollout: int | None

    def apply(self, existing: TldRule | None, flag: str) -> TldRule:
        """The rule to write: legacy covers all (100); otherwise the given rollout, else the
        current one when the TLD already routes somewhere, else 100."""
        if self.rollout is not None:
            rollout = self.rollout
        elif self.mode != Mode.LEGACY and existing is not None and existing.mode != Mode.LEGACY:
            rollout = existing.rollout
        else:
            rollout = 100
        group_id = existing.group_id if existing is not None else flag
        return TldRule(self.tld, self.mode, rollout, group_id)


def check_change(
    tld: str, mode: str, rollout: int | None, known_tlds: frozenset[str]
) -> RuleChange:
    """Validate `flags set` input; raises InvalidInput naming the bad field."""
    clean = tld.strip().lower().lstrip(".")
    if clean not in known_tlds:
        raise InvalidInput("tld", f"unknown TLD {tld!r} (known: {', '.join(sorted(known_tlds))})")
    try:
        chosen = Mode(mode.strip().lower())
    except ValueError:
        modes = ", ".join(m.value for m in Mode)
        raise InvalidInput("mode", f"must be one of {modes}, got {mode!r}") from None
    if rollout is not None and (isinstance(rollout, bool) or not 0 <= rollout <= 100):
        raise InvalidInput("rollout", f"must be a percentage between 0 and 100, got {rollout}")
    return RuleChange(clean, chosen, rollout)


def strategy_body(rule: TldRule, flag: str) -> dict[str, Any]:
    """The flexibleRollout strategy for one TLD, as the admin API and client features hold it."""
    return {
        "name": STRATEGY,
        "title": f"tld:{rule.tld}",
        "constraints": [
            {"contextName": TLD_FIELD, "operator": "IN", "values": [rule.tld], "inverted": False}
        ],
        "parameters": {
            "rollout": str(rule.rollout),
            "stickiness": DOMAIN_FIELD,
            "groupId": rule.group_id or flag,
        },
        "variants": [
            {
                "name": rule.mode.value,
                "weight": 1000,
                "weightType": "variable",
                "stickiness": DOMAIN_FIELD,
                "payload": {"type": "string", "value": rule.mode.value},
            }
        ],
    }


def context(domain: str, tld: str) -> dict[str, Any]:
    """The evaluation context: the TLD to match a strategy, the domain to stick on."""
    return {"properties": {TLD_FIELD: tld, DOMAIN_FIELD: domain}}
