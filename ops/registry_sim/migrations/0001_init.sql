-- Registry simulator schema. Unqualified names: the search_path picks the schema.

-- Stored configuration overrides per registry (strict, rate_limit, burst, faults, ...);
-- the effective configuration is the defaults merged with these.
CREATE TABLE sim_registry_config (
    tld        text PRIMARY KEY,
    overrides  jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Domains the registries hold. statuses are EPP statuses (RFC 5731), empty meaning "ok".
CREATE TABLE sim_domains (
    domain        text PRIMARY KEY,
    tld           text NOT NULL,
    expiry        date NOT NULL,
    premium_cents bigint CHECK (premium_cents IS NULL OR premium_cents >= 0),
    statuses      text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sim_domains_tld_idx ON sim_domains (tld);

-- Every renewal a registry performed: the ground truth for double renewals.
CREATE TABLE sim_renewals (
    renewal_id      bigserial PRIMARY KEY,
    tld             text NOT NULL,
    domain          text NOT NULL,
    client_tx_id    text,
    server_tx_id    text NOT NULL UNIQUE,
    years           int  NOT NULL CHECK (years BETWEEN 1 AND 10),
    previous_expiry date NOT NULL,
    new_expiry      date NOT NULL,
    cur_exp_date    date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sim_renewals_tld_id_idx ON sim_renewals (tld, renewal_id);
CREATE INDEX sim_renewals_domain_idx ON sim_renewals (domain, renewal_id);
CREATE INDEX sim_renewals_client_tx_idx ON sim_renewals (client_tx_id);
CREATE INDEX sim_renewals_tld_created_idx ON sim_renewals (tld, created_at);
