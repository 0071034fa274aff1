"""Retry policies of the renewal's activities, and how the workflow reads an activity error."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from temporal_flow.errors import NON_RETRYABLE

REGISTRY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=list(NON_RETRYABLE),
)
BILLING_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=list(NON_RETRYABLE),
)


def registry_retry(max_attempts: int) -> RetryPolicy:
    """REGISTRY_RETRY bounded to `max_attempts` (0: unbounded, the policy of older inputs)."""
    if max_attempts <= 0:
        return REGISTRY_RETRY
    return dataclasses.replace(REGISTRY_RETRY, maximum_attempts=max_attempts)


def error_type(exc: BaseException) -> str | None:
    """The ApplicationError type of an error, or of an activity error's cause."""
    if isinstance(exc, ApplicationError):
        return exc.type
    if isinstance(exc, ActivityError) and isinstance(exc.cause, ApplicationError):
        return exc.cause.type
    return None


def error_detail(exc: BaseException) -> str | None:
    """The first detail of an ApplicationError (e.g. the operation a renewal is superseded by)."""
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    if isinstance(cause, ApplicationError) and cause.details:
        return str(cause.details[0])
    return None
