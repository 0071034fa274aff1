-- The reconciler groups renewals by period (domain, curExpDate) to find double renewals.
CREATE INDEX sim_renewals_period_idx ON sim_renewals (domain, cur_exp_date);
