-- A scheduled reconciliation (nightly, or a duplicate sweep tick) runs once for its window,
-- whatever the number of scheduler replicas: the second insert of the same window fails.
CREATE UNIQUE INDEX reconciliation_runs_scheduled_uidx
    ON reconciliation_runs (kind, window_start, window_end)
    WHERE kind IN ('nightly', 'sweep') AND status <> 'failed';
