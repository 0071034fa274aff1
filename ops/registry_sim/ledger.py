"""The simulator's renewal ledger as the reconciler's registry ledger source.

The embedded simulator keeps its ledger in the registrar's database: the checks read the
`sim_renewals` table in place, nothing is copied.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import AsyncConnection

from reconciler.sources import LedgerRelation

SIM_RENEWALS = LedgerRelation("sim_renewals", per_run=False)


class SimulatorTableLedger:
    async def fill(
        self, conn: AsyncConnection[Any], run_id: int, since: dt.datetime
    ) -> LedgerRelation:
        return SIM_RENEWALS
