"""Errors of the legacy adapter."""

from __future__ import annotations

from renewals.errors import DualrunError


class CancelRefused(DualrunError):
    """The renewal is past the registry step (or finished): it can no longer be cancelled."""

    def __init__(self, operation_id: str, status: str, step: str | None) -> None:
        super().__init__(
            f"operation_id: {operation_id} cannot be cancelled (status {status}, step {step})"
        )
        self.operation_id = operation_id
        self.status = status
        self.step = step


class RequeueRefused(DualrunError):
    """Only failed, errored or stuck legacy operations can be requeued."""

    def __init__(self, operation_id: str, status: str) -> None:
        super().__init__(f"operation_id: {operation_id} is {status}, not requeueable")
        self.operation_id = operation_id
        self.status = status
