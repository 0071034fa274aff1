"""The stand-ins and the local stack: embedded PostgreSQL, the Temporal dev server and the
Unleash server (`stack.py`), the registry simulator (`registry_sim/`), the reference legacy
engine and the upstream auto-renew batch (`legacy_engine/`), the flags' seed bootstrap file
(`flags/`), and the operators' kit (Prometheus rules, Grafana dashboard, runbooks)."""
