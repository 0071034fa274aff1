"""The local stack: embedded PostgreSQL, Temporal dev server, registry simulator."""
