-- The legacy robots' claim takes the oldest ready row. The index on next_attempt_at alone left
-- PostgreSQL to sort every open legacy row for each claim (about 3.6 ms at 8,000 open rows, so
-- a month start's claims cost O(N) each): in claim order, the walk stops at the first row.
-- Paced robots claim per TLD (the oldest ready row of each TLD with a free place): the second
-- index makes each of those a short walk too.
DROP INDEX operations_legacy_ready_idx;
CREATE INDEX operations_legacy_ready_idx ON operations (next_attempt_at, created_at)
    WHERE engine = 'legacy' AND status IN ('todo', 'error', 'doing');
CREATE INDEX operations_legacy_ready_tld_idx ON operations (tld, next_attempt_at, created_at)
    WHERE engine = 'legacy' AND status IN ('todo', 'error', 'doing');
