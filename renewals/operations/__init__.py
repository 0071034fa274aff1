"""The operations table (the source of truth): the only package of ours that writes
`operations` and `operation_events`.

Every write of dualrun's own code goes through here: the router's inserts (`create`), the
Temporal workflow's row sync (`sync`: one statement per write, on the hot path), cancel,
requeue and relaunch (`rework`). The reference legacy engine in `ops/` plays a system we do
not own and keeps its own SQL. Reads that return a row give an `Operation` (`reads`). Callers
use the names below: `from renewals import operations`, then `operations.insert(...)`.
"""

from renewals.operations.create import (
    Routed,
    claim_keys,
    create_routed,
    insert,
    insert_many,
    log_event,
    owner_routed,
    owners,
    taken_ids,
)
from renewals.operations.reads import (
    GATE_SQL,
    HAS_RENEWAL_SQL,
    TERMINAL_SQL,
    Conn,
    Gate,
    charged,
    event_since,
    events,
    gate,
    gate_of,
    get,
    lock,
)
from renewals.operations.rework import (
    flag_cancel,
    relaunched_run,
    reopen,
    requeue,
    rerun,
    restore,
)
from renewals.operations.sync import (
    RunEnd,
    StepOf,
    record_renewal,
    record_run,
    step_finished,
    step_started,
    take_renew_lease,
)

__all__ = [
    "GATE_SQL",
    "HAS_RENEWAL_SQL",
    "TERMINAL_SQL",
    "Conn",
    "Gate",
    "Routed",
    "RunEnd",
    "StepOf",
    "charged",
    "claim_keys",
    "create_routed",
    "event_since",
    "events",
    "flag_cancel",
    "gate",
    "gate_of",
    "get",
    "insert",
    "insert_many",
    "lock",
    "log_event",
    "owner_routed",
    "owners",
    "record_renewal",
    "record_run",
    "relaunched_run",
    "reopen",
    "requeue",
    "rerun",
    "restore",
    "step_finished",
    "step_started",
    "take_renew_lease",
    "taken_ids",
]
