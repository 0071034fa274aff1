"""Errors of the core package. Each carries the data it is about as attributes."""

from __future__ import annotations


class DualrunError(Exception):
    """Base of every error dualrun raises on purpose."""


class InvalidInput(DualrunError):
    """A field of a request is missing, of the wrong type or out of range."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class IdempotencyConflict(DualrunError):
    """The same idempotency key was used with other parameters."""

    def __init__(self, idempotency_key: str, field: str, existing: object, given: object) -> None:
        super().__init__(
            f"{field}: idempotency key {idempotency_key} is already used with "
            f"{field}={existing!r}, not {given!r}"
        )
        self.idempotency_key = idempotency_key
        self.field = field
        self.existing = existing
        self.given = given


class ConfigError(DualrunError):
    """A setting read from the environment is unusable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class OperationNotFound(DualrunError):
    """No operation has this id."""

    def __init__(self, operation_id: str) -> None:
        super().__init__(f"operation_id: no operation {operation_id}")
        self.operation_id = operation_id


class RenewalTaken(DualrunError):
    """An operation cannot go back to work: another operation has its renewal now."""

    def __init__(self, operation_id: str, owner: str) -> None:
        super().__init__(
            f"operation_id: {operation_id} cannot go back to work: {owner} has the renewal now"
        )
        self.operation_id = operation_id
        self.owner = owner


class EngineUnavailable(DualrunError):
    """An engine's server does not answer the call (Temporal down or unreachable): nothing was
    done; the same call can be made again later."""

    def __init__(self, engine: str, problem: str) -> None:
        super().__init__(f"{engine} is unavailable: {problem}; nothing was done, try again")
        self.engine = engine
        self.problem = problem
