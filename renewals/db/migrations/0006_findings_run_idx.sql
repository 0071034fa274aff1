-- Reports read a run's findings by `first_run_id = run OR last_run_id = run`: index both, so
-- that read does not grow with the whole history of findings.
CREATE INDEX findings_first_run_idx ON findings (first_run_id);
CREATE INDEX findings_last_run_idx ON findings (last_run_id);
