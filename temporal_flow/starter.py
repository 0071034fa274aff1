"""Start renewal workflows (live or shadow) under their idempotency key, and the Temporal client."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from temporalio.client import Client, TLSConfig
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from renewals.domains import tld_of
from renewals.model import RenewalRequest
from renewals.settings import Settings
from temporal_flow import search_attributes as sa
from temporal_flow.ids import workflow_id
from temporal_flow.types import RenewInput, RunMode
from temporal_flow.workflows import RenewDomain


async def connect(settings: Settings) -> Client:
    """A client for the configured cluster (TLS / API key when set) or the embedded dev server."""
    tls: bool | TLSConfig = settings.temporal_tls
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key.reveal() if settings.temporal_api_key else None,
        tls=tls,
    )


def in_aa_sample(idempotency_key: str, share: float) -> bool:
    """Whether a shadow renewal gets a second plan: a stable draw on its key."""
    draw = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:8], "big")
    return draw < share * 2**64


@dataclass(frozen=True)
class Started:
    workflow_id: str
    run_id: str | None
    existing: bool  # the key already had a run (running or closed): nothing new was started


async def start_renewal(
    client: Client, task_queue: str, inp: RenewInput, plan: str = "a"
) -> Started:
    """Start RenewDomain once per key (and plan): a key that has a run, running or finished,
    starts nothing (`existing`, with that run's id)."""
    wid = workflow_id(inp.idempotency_key, inp.mode, plan)
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(sa.TLD, tld_of(inp.domain)),
            SearchAttributePair(sa.DOMAIN, inp.domain),
            SearchAttributePair(sa.ENGINE_MODE, inp.mode.value),
            SearchAttributePair(sa.OPERATION_ID, inp.operation_id),
        ]
    )
    try:
        handle = await client.start_workflow(
            RenewDomain.run,
            inp,
            id=wid,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
        )
    except WorkflowAlreadyStartedError as exc:
        return Started(wid, exc.run_id, existing=True)
    return Started(wid, handle.result_run_id, existing=False)


def renew_input(request: RenewalRequest, mode: RunMode, settings: Settings) -> RenewInput:
    return RenewInput(
        operation_id=request.operation_id,
        idempotency_key=request.idempotency_key,
        domain=request.domain,
        years=request.years,
        current_expiry=request.current_expiry.isoformat(),
        customer_id=request.customer_id,
        mode=mode,
        activity_timeout_s=settings.activity_timeout_s,
        registry_max_attempts=settings.registry_max_attempts,
    )
