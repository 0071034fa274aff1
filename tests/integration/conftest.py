"""Fixtures shared by integration modules (the rest live in tests/conftest.py)."""

from tests.integration.legacy_support import legacy  # noqa: F401 - the legacy side of a test
