"""The router: which engine (and mode) a renewal goes to, from the flags, with the reason why.

`decide` is pure (flags in memory, no database): storing and reusing the decision is the
service's job. Each mode of DESIGN §4 maps to the engine that is authoritative for it:
legacy → legacy, shadow → legacy (plus a Temporal plan), temporal → Temporal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from dualrun.flags.model import FlagSourceKind, bucket_of
from dualrun.flags.port import FlagView
from renewals.domains import tld_of
from renewals.engine import ENGINE_OF_MODE
from renewals.model import Engine, Mode, RenewalRequest


class FlagReader(Protocol):
    def read(self) -> FlagView: ...


@dataclass(frozen=True)
class Decision:
    """Where one renewal goes, and everything that explains it."""

    domain: str
    tld: str
    mode: Mode
    engine: Engine
    bucket: int
    rollout: int | None
    source: FlagSourceKind
    flag_state: dict[str, Any]
    reason: str

    def explain(self) -> dict[str, Any]:
        """The `route explain` line: domain, engine, mode, bucket, source, reason."""
        return {
            "domain": self.domain,
            "engine": self.engine.value,
            "mode": self.mode.value,
            "bucket": self.bucket,
            "rollout": self.rollout,
            "source": self.source.value,
            "reason": self.reason,
        }


def _why_legacy(view: FlagView, tld: str, bucket: int) -> str:
    state = view.state
    rule = state.rule(tld)
    if view.source == FlagSourceKind.DEFAULT:
        return view.detail
    if not state.defined:
        return f"flag {state.flag} is not defined ({view.source.value}): legacy"
    if not state.enabled:
        return f"flag {state.flag} is off (kill switch): legacy"
    if rule is None:
        return f"no strategy for .{tld}: legacy"
    if bucket >= rule.rollout:
        return (
            f".{tld} is {rule.mode.value} for {rule.rollout}%: bucket {bucket} is outside, legacy"
        )
    return f"flag {state.flag} is off for this domain: legacy"


class Router:
    def __init__(self, flags: FlagReader) -> None:
        self.flags = flags

    def decide(self, request: RenewalRequest) -> Decision:
        return self.route(request.domain)

    def route_all(self, domains: Iterable[str]) -> list[Decision]:
        return [self.route(d) for d in domains]

    def route(self, domain: str) -> Decision:
        """Route an already normalised domain name."""
        view = self.flags.read()
        tld = tld_of(domain)
        state = view.state
        rule = state.rule(tld)
        bucket = bucket_of(domain, rule.group_id if rule else state.flag)
        variant = view.variant(domain, tld)
        mode = Mode.LEGACY
        if variant is None:
            reason = _why_legacy(view, tld, bucket)
        elif variant not in Mode.__members__.values():
            reason = f"unknown variant {variant!r} for .{tld}: legacy"
        else:
            mode = Mode(variant)
            share = f"{rule.rollout}%" if rule else "?%"
            reason = f".{tld} is {mode.value} for {share}: bucket {bucket} is in"
            if mode == Mode.LEGACY:
                reason = f".{tld} is legacy"
        flag_state = {
            "flag": state.flag,
            "defined": state.defined,
            "enabled": state.enabled,
            "revision": state.revision,
            "tld": tld,
            "rule": rule.as_dict() if rule else None,
            "variant": variant,
            "source": view.source.value,
        }
        return Decision(
            domain=domain,
            tld=tld,
            mode=mode,
            engine=ENGINE_OF_MODE[mode],
            bucket=bucket,
            rollout=rule.rollout if rule else None,
            source=view.source,
            flag_state=flag_state,
            reason=reason,
        )
