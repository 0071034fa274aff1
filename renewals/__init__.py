"""The ground floor: the renewal every part shares (DESIGN §2).

Model, idempotency key and enums, domain-name rules, errors, settings, logs, metrics, the
database pool and migrations, the one writer of `operations`, the registry and billing clients,
and the Engine port. It imports nothing above it.
"""
