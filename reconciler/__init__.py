"""reconciler — see DESIGN.md §2."""
