"""legacy_adapter — see DESIGN.md §2."""
