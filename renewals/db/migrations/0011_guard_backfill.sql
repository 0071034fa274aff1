-- The rollout guard acts on critical findings that appear after it exists (0009 added
-- `guarded_at`, NULL on every finding then). Findings first seen before 0009 was applied are
-- history: marked looked at, so the first guard after an upgrade does not roll back every TLD
-- that ever had a Temporal-side critical finding. Findings of later runs stay for the guard.
UPDATE findings f SET guarded_at = m.applied_at
FROM schema_migrations m
WHERE m.component = 'core' AND m.version = 9
  AND f.guarded_at IS NULL AND f.first_seen_at < m.applied_at;

-- `flags on` / `flags off` are flag changes too: recorded per TLD they affect.
ALTER TABLE rollout_events DROP CONSTRAINT rollout_events_action_check;
ALTER TABLE rollout_events ADD CONSTRAINT rollout_events_action_check
    CHECK (action IN ('next', 'back', 'guard', 'set', 'on', 'off'));

-- The duplicate sweep looks at operations by when they finished (a renewal done, or cancelled,
-- after the tick it was created in is still caught by the next sweep).
CREATE INDEX operations_finished_at_idx ON operations (finished_at) WHERE finished_at IS NOT NULL;
