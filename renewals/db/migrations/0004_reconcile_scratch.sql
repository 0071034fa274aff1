-- Scratch tables of reconciliation runs (keyed by run, emptied when the run ends), so every
-- check can run on a connection of its own, in parallel: the registry renewals a ledger API
-- returned, and the state Temporal's visibility gave for each renewal workflow.
CREATE UNLOGGED TABLE recon_renewals (
    run_id          bigint NOT NULL,
    tld             text NOT NULL,
    domain          text NOT NULL,
    cur_exp_date    date NOT NULL,
    previous_expiry date NOT NULL,
    new_expiry      date NOT NULL,
    years           int  NOT NULL,
    server_tx_id    text NOT NULL,
    client_tx_id    text,
    created_at      timestamptz NOT NULL
);
CREATE INDEX recon_renewals_run_idx ON recon_renewals (run_id, domain, cur_exp_date);

CREATE UNLOGGED TABLE recon_wf_states (
    run_id      bigint NOT NULL,
    workflow_id text NOT NULL,
    wf_run_id   text,
    status      text NOT NULL,
    start_time  timestamptz,
    close_time  timestamptz,
    PRIMARY KEY (run_id, workflow_id)
);

-- Refund checks look charges up by operation.
CREATE INDEX billing_ledger_operation_idx ON billing_ledger (operation_id);
