-- A readiness signal operators can trust, and a guarded rollout that acts on it (DESIGN §4, §5).

-- A sample of shadow renewals gets a second, independent plan (A/A): plan 'a' is compared with
-- legacy, plan 'b' with plan 'a' (the comparator's noise).
ALTER TABLE shadow_plans ADD COLUMN plan text NOT NULL DEFAULT 'a' CHECK (plan IN ('a', 'b'));
ALTER TABLE shadow_plans DROP CONSTRAINT shadow_plans_pkey;
ALTER TABLE shadow_plans ADD PRIMARY KEY (idempotency_key, plan);

-- Each shadow comparison's class, as the reconciler last decided it: the Temporal plan against
-- legacy ('legacy'), or the second plan against the first ('aa'). `decided_run_id`: the run that
-- first gave it its final class (a report of an earlier run counts it pending).
CREATE TABLE shadow_comparisons (
    idempotency_key text NOT NULL,
    pair            text NOT NULL CHECK (pair IN ('legacy', 'aa')),
    tld             text NOT NULL,
    created_at      timestamptz NOT NULL,  -- of the legacy operation: the window it belongs to
    class           text NOT NULL
                         CHECK (class IN ('agree', 'business_mismatch', 'not_comparable', 'pending')),
    reason          text,
    decided_run_id  bigint REFERENCES reconciliation_runs (run_id),
    updated_run_id  bigint REFERENCES reconciliation_runs (run_id),
    PRIMARY KEY (idempotency_key, pair)
);
CREATE INDEX shadow_comparisons_created_idx ON shadow_comparisons (created_at);

-- Every change of a TLD's flag made by `dualrun rollout` or `dualrun flags set`, by whom and why.
CREATE TABLE rollout_events (
    event_id     bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    tld          text NOT NULL,
    action       text NOT NULL CHECK (action IN ('next', 'back', 'guard', 'set')),
    actor        text NOT NULL,
    from_mode    text,
    from_rollout int,
    to_mode      text NOT NULL,
    to_rollout   int,
    verdict      text,
    run_id       bigint REFERENCES reconciliation_runs (run_id),
    forced       boolean NOT NULL DEFAULT false,
    reason       text,
    findings     text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX rollout_events_tld_idx ON rollout_events (tld, event_id);

-- When the guard looked at a critical finding (rolled its TLD back, or found it already on
-- legacy): a finding is acted upon once.
ALTER TABLE findings ADD COLUMN guarded_at timestamptz;
CREATE INDEX findings_unguarded_idx ON findings (severity) WHERE guarded_at IS NULL;
