"""The registry simulator: EPP-like registries over HTTP with rate limits and injectable faults."""

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
