"""Routing renewals: the router (decide), decisions pinned per idempotency key, dispatch to the
engine, and the service behind the CLI and the HTTP API."""

from __future__ import annotations

from dualrun.routing.answers import Submitted
from dualrun.routing.router import Decision, Router
from dualrun.routing.service import RenewalService

__all__ = ["Decision", "RenewalService", "Router", "Submitted"]
