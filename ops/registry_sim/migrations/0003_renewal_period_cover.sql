-- The reconciler's double-renewal scan groups the ledger by (domain, period) over a window of
-- created_at: with created_at in the index it reads the index alone (an index-only scan).
CREATE INDEX sim_renewals_period_cover_idx ON sim_renewals (domain, cur_exp_date)
    INCLUDE (created_at);
DROP INDEX sim_renewals_period_idx;
