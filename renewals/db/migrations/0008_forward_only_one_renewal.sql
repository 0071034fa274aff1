-- The source of truth moves forward only, and one renewal is one operation across engines
-- (DESIGN §3), enforced by the database whoever writes: our code, a reset workflow run, a late
-- activity, a stale legacy robot, the upstream batch.

-- `superseded`: an operation that ran no side effect because another operation already had
-- the renewal (live or done); `superseded_by` names it.
ALTER TABLE operations DROP CONSTRAINT operations_status_check;
ALTER TABLE operations ADD CONSTRAINT operations_status_check
    CHECK (status IN ('todo', 'doing', 'error', 'done', 'failed', 'cancelled', 'superseded'));
ALTER TABLE operations ADD COLUMN superseded_by text;
-- The run whose registry renew may be in flight, until when: a reset or relaunched run of the
-- same renewal waits for it to end before it looks for the registry's record and renews.
ALTER TABLE operations ADD COLUMN renew_lease_run text, ADD COLUMN renew_lease_until timestamptz;
DROP INDEX operations_legacy_ready_idx;
CREATE INDEX operations_legacy_ready_idx ON operations (next_attempt_at)
    WHERE engine = 'legacy' AND status IN ('todo', 'error', 'doing');
DROP INDEX operations_open_idx;
CREATE INDEX operations_open_idx ON operations (status)
    WHERE status NOT IN ('done', 'failed', 'cancelled', 'superseded');

-- The owner of each renewal key: the operation that has the renewal. Inserting the key is
-- what serialises every creator of an operation for one key (router, batch, import,
-- relaunch): a second insert of the same key waits on the unique index until the first
-- transaction ends, then sees its owner.
CREATE TABLE renewal_keys (
    idempotency_key text PRIMARY KEY,
    operation_id    text NOT NULL REFERENCES operations (operation_id) ON DELETE CASCADE
                         DEFERRABLE INITIALLY DEFERRED,  -- claimed just before its row is inserted
    engine          text NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO renewal_keys (idempotency_key, operation_id, engine, claimed_at)
SELECT DISTINCT ON (idempotency_key) idempotency_key, operation_id, engine, created_at
FROM operations ORDER BY idempotency_key, created_at, operation_id;

-- A live (todo, doing, error) or done operation has the renewal; failed, cancelled and
-- superseded ones do not.
CREATE FUNCTION dualrun_has_renewal(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT status IN ('todo', 'doing', 'error', 'done') $$;

-- Before an operation is inserted: claim its key, or meet the key's owner. An owner that has
-- the renewal makes the new operation `superseded` at birth (it never runs), pointing to it;
-- an owner that no longer has it hands the key over. Only the legacy system's own duplicates
-- (its upstream batch or an import writing one key twice on the legacy engine: the
-- month-start twins) are left as they come, for the legacy engine to run as it always did and
-- the reconciler to report.
CREATE FUNCTION dualrun_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner operations%ROWTYPE;
BEGIN
    INSERT INTO renewal_keys (idempotency_key, operation_id, engine)
    VALUES (NEW.idempotency_key, NEW.operation_id, NEW.engine)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    SELECT o.* INTO owner FROM renewal_keys k JOIN operations o USING (operation_id)
    WHERE k.idempotency_key = NEW.idempotency_key FOR UPDATE OF k;
    IF owner.operation_id IS NULL OR owner.operation_id = NEW.operation_id THEN
        RETURN NEW;
    END IF;
    IF dualrun_has_renewal(owner.status)
       AND NOT (owner.engine = 'legacy' AND NEW.engine = 'legacy'
                AND owner.origin IN ('autorenew', 'import')
                AND NEW.origin IN ('autorenew', 'import')) THEN
        NEW.status := 'superseded';
        NEW.superseded_by := owner.operation_id;
        NEW.finished_at := now();
    ELSIF NOT dualrun_has_renewal(owner.status) THEN
        UPDATE renewal_keys SET operation_id = NEW.operation_id, engine = NEW.engine,
                                claimed_at = now()
        WHERE idempotency_key = NEW.idempotency_key;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER operations_claim_key BEFORE INSERT ON operations
    FOR EACH ROW EXECUTE FUNCTION dualrun_claim_key();

CREATE FUNCTION dualrun_log_superseded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operation_events (operation_id, event, detail)
    VALUES (NEW.operation_id, 'superseded',
            jsonb_build_object('by', NEW.superseded_by, 'engine', NEW.engine));
    RETURN NULL;
END $$;
CREATE TRIGGER operations_log_superseded AFTER INSERT ON operations
    FOR EACH ROW WHEN (NEW.status = 'superseded') EXECUTE FUNCTION dualrun_log_superseded();

-- Forward only: done, cancelled and superseded are final; failed goes back to work (todo) only
-- through a relaunch or a requeue, which say so for their transaction
-- (`SET LOCAL dualrun.reopen = 'on'`), and forward to done or superseded when a rerun proves
-- the renewal happened (by this operation, or by another engine's). A refused move leaves the row as it was, logs event `status.refused` and raises a
-- notice the writers' pools log and count; it never fails the writer's statement.
CREATE FUNCTION dualrun_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    allowed boolean;
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    allowed := CASE
        WHEN OLD.status IN ('done', 'cancelled', 'superseded') THEN false
        WHEN OLD.status = 'failed' THEN
            NEW.status IN ('done', 'superseded')
            OR (NEW.status = 'todo' AND current_setting('dualrun.reopen', true) = 'on')
        ELSE true
    END;
    IF allowed THEN
        RETURN NEW;
    END IF;
    INSERT INTO operation_events (operation_id, step, event, detail)
    VALUES (OLD.operation_id, OLD.step, 'status.refused',
            jsonb_build_object('from', OLD.status, 'to', NEW.status,
                               'by', current_setting('application_name', true)));
    RAISE NOTICE 'dualrun.move_refused %', json_build_object(
        'operation_id', OLD.operation_id, 'engine', OLD.engine,
        'from', OLD.status, 'to', NEW.status);
    RETURN NULL;
END $$;
CREATE TRIGGER operations_forward_only BEFORE UPDATE OF status ON operations
    FOR EACH ROW EXECUTE FUNCTION dualrun_forward_only();
