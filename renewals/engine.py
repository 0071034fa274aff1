"""The Engine port: what routing, cancel, relaunch and status need from an engine that runs
renewals (DESIGN §2). `legacy_adapter.LegacyEngine` and `temporal_flow.TemporalEngine`
implement it; the application registers them in `Engines` (`dualrun/wiring.py`). A third
engine is one adapter, one registration, and its name in `Engine` (with the operations table's
check on it); routing, cancel, relaunch and status need no change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from psycopg import AsyncConnection

from renewals.errors import DualrunError
from renewals.model import Engine, Mode, Operation, Origin, RenewalRequest


@dataclass(frozen=True)
class CancelResult:
    operation_id: str
    engine: Engine
    accepted: bool
    status: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "engine": self.engine.value,
            "accepted": self.accepted,
            "status": self.status,
            "message": self.message,
        }


RelaunchAction = Literal["reset", "fresh", "requeue", "skip"]


@dataclass(frozen=True)
class RelaunchPlan:
    """What relaunching one operation means now (reading it changes nothing).

    `reopen`: the row goes back to `todo` before the relaunch is sent (a new workflow run syncs
    onto it), else the send itself moves the row (a requeue). `detail` is what the job records
    of the plan (e.g. the run reset and the event it is reset to)."""

    action: RelaunchAction
    reason: str | None = None
    reopen: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RelaunchItem:
    """One operation of a relaunch job, as the job recorded it."""

    operation: Operation
    from_run_id: str | None = None  # the run a reset started from, once prepared
    prepared_at: dt.datetime | None = None  # when the job decided (and, with `reopen`,
    # reopened the row): set when an interrupted job is resumed


class RelaunchSkipped(DualrunError):
    """The engine will not relaunch this operation now (the job records why, sends nothing)."""


class RenewalEngine(Protocol):
    """An engine that runs renewals; every operation row names the one that runs it."""

    @property
    def kind(self) -> Engine: ...

    async def submit(
        self, conn: AsyncConnection[Any], request: RenewalRequest, origin: Origin = ...
    ) -> Operation:
        """Create the operation row, in the caller's transaction."""
        ...

    def workflow_id(self, request: RenewalRequest) -> str | None:
        """The id the engine runs the renewal under (recorded with its row), if it has one."""
        ...

    async def start(self, request: RenewalRequest) -> str | None:
        """After commit: hand the renewal to the engine (nothing when it polls its table).
        Returns why it could not be handed over (the row stays `todo`), else None."""
        ...

    async def cancel(self, operation: Operation, reason: str) -> CancelResult:
        """Cancel before the registry step (refunding any charge), or say why not."""
        ...

    async def relaunch_plan(self, item: RelaunchItem) -> RelaunchPlan: ...

    async def relaunch_sent(self, item: RelaunchItem) -> str | None:
        """For an item prepared by an interrupted job: the run it was relaunched to (or "" when
        the engine has no runs) if the relaunch was sent, else None."""
        ...

    async def relaunch(self, item: RelaunchItem, plan: RelaunchPlan, request_id: str) -> str:
        """Send the relaunch (`request_id` makes a repeat harmless); the new run id, or "".
        Raises RelaunchSkipped when the engine refuses it now."""
        ...

    async def describe(self, operation: Operation) -> dict[str, Any]:
        """What the engine itself says of the operation (for `status`), JSON-ready."""
        ...


class Planner(Protocol):
    """Runs a shadow plan of a renewal: read-only steps for real, no charge, no renew."""

    async def plan(self, request: RenewalRequest) -> str | None:
        """Start the plan; why it could not be started, else None."""
        ...


ENGINE_OF_MODE: Mapping[Mode, Engine] = {
    Mode.LEGACY: Engine.LEGACY,
    Mode.SHADOW: Engine.LEGACY,  # legacy is authoritative; Temporal only plans
    Mode.TEMPORAL: Engine.TEMPORAL,
}


@dataclass(frozen=True)
class Engines:
    """The engines the application runs, by kind, and the one that makes shadow plans."""

    by_kind: Mapping[Engine, RenewalEngine]
    planner: Planner | None = None

    def __getitem__(self, kind: Engine | str) -> RenewalEngine:
        return self.by_kind[Engine(kind)]
