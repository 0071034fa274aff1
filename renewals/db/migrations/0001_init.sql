-- dualrun core schema. The operations table is the source of truth, shaped like the
-- registrar's existing table: no uniqueness on the idempotency key, so duplicate operations
-- (the month-start incident) can exist and be found by the reconciler.

CREATE TABLE operations (
    operation_id            text PRIMARY KEY,
    idempotency_key         text NOT NULL,
    domain                  text NOT NULL,
    tld                     text NOT NULL,
    years                   int  NOT NULL CHECK (years BETWEEN 1 AND 10),
    current_expiry          date NOT NULL,
    customer_id             text NOT NULL,
    engine                  text NOT NULL CHECK (engine IN ('legacy', 'temporal')),
    origin                  text NOT NULL DEFAULT 'router'
                                 CHECK (origin IN ('router', 'autorenew', 'relaunch', 'import')),
    status                  text NOT NULL DEFAULT 'todo'
                                 CHECK (status IN ('todo', 'doing', 'error', 'done', 'failed', 'cancelled')),
    step                    text CHECK (step IN ('status', 'price', 'charge', 'renew', 'record')),
    attempts                int  NOT NULL DEFAULT 0,
    max_attempts            int  NOT NULL DEFAULT 5,
    next_attempt_at         timestamptz NOT NULL DEFAULT now(),
    lease_owner             text,
    lease_expires_at        timestamptz,
    cancel_requested_at     timestamptz,
    workflow_id             text,
    run_id                  text,
    price_cents             bigint,
    charged_cents           bigint,
    refunded_cents          bigint,
    currency                text,
    new_expiry              date,
    registry_transaction_id text,
    error_code              text,
    error_message           text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    started_at              timestamptz,
    finished_at             timestamptz
);
CREATE INDEX operations_idempotency_key_idx ON operations (idempotency_key);
CREATE INDEX operations_created_at_idx ON operations (created_at);
CREATE INDEX operations_tld_created_at_idx ON operations (tld, created_at);
CREATE INDEX operations_legacy_ready_idx ON operations (next_attempt_at)
    WHERE engine = 'legacy' AND status IN ('todo', 'error', 'doing');
CREATE INDEX operations_open_idx ON operations (status)
    WHERE status NOT IN ('done', 'failed', 'cancelled');

-- Step history of every operation, written by both engines (legacy robots, Temporal interceptors).
CREATE TABLE operation_events (
    event_id      bigserial PRIMARY KEY,
    operation_id  text NOT NULL REFERENCES operations (operation_id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    step          text,
    event         text NOT NULL,
    attempt       int,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX operation_events_operation_idx ON operation_events (operation_id, event_id);

-- One routing decision per idempotency key, made once, with the flag state it came from.
CREATE TABLE routing_decisions (
    idempotency_key text PRIMARY KEY,
    operation_id    text NOT NULL,
    domain          text NOT NULL,
    tld             text NOT NULL,
    current_expiry  date NOT NULL,
    years           int  NOT NULL,
    customer_id     text NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('legacy', 'shadow', 'temporal')),
    engine          text NOT NULL CHECK (engine IN ('legacy', 'temporal')),
    bucket          int,
    rollout         int,
    flag_source     text NOT NULL,
    flag_state      jsonb NOT NULL DEFAULT '{}',
    reason          text NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_decisions_tld_decided_idx ON routing_decisions (tld, decided_at);

-- Money movements. charge_key is the caller's idempotency key for the movement (the renewal
-- key on the Temporal side; the legacy engine has none of its own and sends a fresh one per
-- call, which is how it can charge twice). idempotency_key is the renewal paid for.
CREATE TABLE billing_ledger (
    entry_id        bigserial PRIMARY KEY,
    charge_key      text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('charge', 'refund')),
    idempotency_key text NOT NULL,
    operation_id    text NOT NULL,
    customer_id     text NOT NULL,
    amount_cents    bigint NOT NULL CHECK (amount_cents >= 0),
    currency        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (charge_key, kind)
);
CREATE INDEX billing_ledger_idempotency_key_idx ON billing_ledger (idempotency_key);
CREATE INDEX billing_ledger_created_at_idx ON billing_ledger (created_at);

-- What a Temporal shadow run would have done (never charged, never renewed).
CREATE TABLE shadow_plans (
    idempotency_key     text PRIMARY KEY,
    operation_id        text NOT NULL,
    workflow_id         text NOT NULL,
    domain              text NOT NULL,
    tld                 text NOT NULL,
    years               int  NOT NULL,
    registry_expiry     date,
    premium             boolean,
    would_charge_cents  bigint,
    currency            text,
    expected_new_expiry date,
    verdict             text NOT NULL CHECK (verdict IN ('would_renew', 'would_refuse')),
    refusal             text,
    planned_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reconciliation_runs (
    run_id       bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('nightly', 'sweep', 'manual')),
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    operations   int,
    counts       jsonb NOT NULL DEFAULT '{}',
    new_findings int,
    error        text,
    CHECK (window_end > window_start)
);
CREATE INDEX reconciliation_runs_kind_window_idx ON reconciliation_runs (kind, window_end);

-- A finding has a stable key: a rerun over the same window finds it again, adds nothing.
CREATE TABLE findings (
    finding_key     text PRIMARY KEY,
    kind            text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    tld             text,
    engine          text,
    idempotency_key text,
    operation_ids   text[] NOT NULL DEFAULT '{}',
    summary         text NOT NULL,
    evidence        jsonb NOT NULL DEFAULT '{}',
    first_run_id    bigint REFERENCES reconciliation_runs (run_id),
    last_run_id     bigint REFERENCES reconciliation_runs (run_id),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    alerted_at      timestamptz
);
CREATE INDEX findings_kind_idx ON findings (kind, first_seen_at);
