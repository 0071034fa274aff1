"""Database access: connection pools, per-schema DSNs and versioned migrations."""
