"""legacy_adapter: the Engine port over the legacy engine's tables (DESIGN §2)."""

from legacy_adapter.engine import LegacyEngine

__all__ = ["LegacyEngine"]
