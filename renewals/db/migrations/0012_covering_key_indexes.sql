-- The reconciler's scans by renewal key read the index alone (index-only scans, no heap
-- fetch per row): the duplicate-key scan of operations needs each row's created_at, and the
-- double-charge scan of the billing ledger each movement's kind and created_at. Covering
-- indexes replace the plain key indexes (same key, same lookups). `engine` and `created_at`
-- never change after the insert, and `status` and `kind` are indexed already (a status
-- change was never a HOT update): the hot path writes no more index entries than before.
CREATE INDEX operations_key_cover_idx ON operations (idempotency_key)
    INCLUDE (created_at, engine, status);
DROP INDEX operations_idempotency_key_idx;
CREATE INDEX billing_ledger_key_cover_idx ON billing_ledger (idempotency_key)
    INCLUDE (kind, created_at);
DROP INDEX billing_ledger_idempotency_key_idx;
-- The refund check reads the operations that ended without their renewal (cancelled,
-- superseded, failed): a few of a window's, found without a scan of all of it.
CREATE INDEX operations_ended_unrenewed_idx ON operations (created_at)
    WHERE status IN ('cancelled', 'superseded', 'failed');
-- The shadow comparisons start from the window's shadowed keys: the router's shadow
-- decisions and the plans, each by time, instead of every legacy operation of the window.
CREATE INDEX routing_decisions_shadow_idx ON routing_decisions (decided_at)
    WHERE mode = 'shadow';
CREATE INDEX shadow_plans_planned_idx ON shadow_plans (planned_at);
