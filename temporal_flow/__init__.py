"""temporal_flow — see DESIGN.md §2."""
