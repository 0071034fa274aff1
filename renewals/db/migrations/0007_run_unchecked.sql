-- The checks a run could not make (e.g. `status_drift` while Temporal was unreachable): a
-- report must not read their absence of findings as a clean result.
ALTER TABLE reconciliation_runs ADD COLUMN unchecked text[] NOT NULL DEFAULT '{}';
