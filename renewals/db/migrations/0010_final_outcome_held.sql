-- The source of truth moves forward only (DESIGN §3), now for a final row's outcome and its
-- existence too, and a reset run may put a failed row back to work as a relaunch does.
--
-- * A final row (done, cancelled, superseded) keeps its outcome: a late writer (a stale robot,
--   a late activity, a reset run, a hand fix) may repeat the same values (a rerun that proves
--   the same renewal records it again), never change them. Held: status, the step it ended
--   at, and the outcome (new_expiry, registry_transaction_id, charged_cents, refunded_cents,
--   currency, error_code, error_message, superseded_by).
-- * Every row keeps what names its renewal (idempotency_key, engine, domain, years,
--   current_expiry, customer_id): the key claim of 0008 is made at insert, so a rewrite of these
--   would move a renewal past it.
-- * No row is deleted: the source of truth keeps every operation.
-- * failed → doing joins failed → todo for a transaction that says it reopens the row
--   (`dualrun.reopen`): the first step of a Temporal reset run of a failed renewal takes its key
--   back and goes back to work, so no other operation can claim the key while it runs.
--
-- A refusal leaves the row as it was, logs an event (`status.refused`, `outcome.refused`,
-- `delete.refused`) and raises the `dualrun.move_refused` notice the writers' pools log and
-- count (dualrun_operation_moves_refused_total); the writer's statement does not fail.

CREATE OR REPLACE FUNCTION dualrun_refuse(old operations, event text, wanted text,
                                          detail jsonb) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operation_events (operation_id, step, event, detail)
    VALUES (old.operation_id, old.step, event,
            detail || jsonb_build_object('from', old.status, 'to', wanted,
                                         'by', current_setting('application_name', true)));
    RAISE NOTICE 'dualrun.move_refused %', json_build_object(
        'operation_id', old.operation_id, 'engine', old.engine, 'from', old.status,
        'to', wanted, 'event', event, 'columns', detail->'columns');
END $$;

CREATE OR REPLACE FUNCTION dualrun_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    allowed boolean;
    changed text[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM dualrun_refuse(OLD, 'delete.refused', 'deleted', '{}'::jsonb);
        RETURN NULL;
    END IF;
    changed := array_remove(ARRAY[
        CASE WHEN NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key THEN 'idempotency_key' END,
        CASE WHEN NEW.engine IS DISTINCT FROM OLD.engine THEN 'engine' END,
        CASE WHEN NEW.domain IS DISTINCT FROM OLD.domain THEN 'domain' END,
        CASE WHEN NEW.years IS DISTINCT FROM OLD.years THEN 'years' END,
        CASE WHEN NEW.current_expiry IS DISTINCT FROM OLD.current_expiry THEN 'current_expiry' END,
        CASE WHEN NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN 'customer_id' END], NULL);
    IF OLD.status IN ('done', 'cancelled', 'superseded') THEN
        changed := changed || array_remove(ARRAY[
            CASE WHEN NEW.new_expiry IS DISTINCT FROM OLD.new_expiry THEN 'new_expiry' END,
            CASE WHEN NEW.registry_transaction_id IS DISTINCT FROM OLD.registry_transaction_id
                 THEN 'registry_transaction_id' END,
            CASE WHEN NEW.charged_cents IS DISTINCT FROM OLD.charged_cents THEN 'charged_cents' END,
            CASE WHEN NEW.refunded_cents IS DISTINCT FROM OLD.refunded_cents
                 THEN 'refunded_cents' END,
            CASE WHEN NEW.currency IS DISTINCT FROM OLD.currency THEN 'currency' END,
            CASE WHEN NEW.error_code IS DISTINCT FROM OLD.error_code THEN 'error_code' END,
            CASE WHEN NEW.error_message IS DISTINCT FROM OLD.error_message THEN 'error_message' END,
            CASE WHEN NEW.superseded_by IS DISTINCT FROM OLD.superseded_by THEN 'superseded_by' END,
            CASE WHEN NEW.step IS DISTINCT FROM OLD.step THEN 'step' END
        ], NULL);
    END IF;
    IF NEW.status = OLD.status AND cardinality(changed) = 0 THEN
        RETURN NEW;
    END IF;
    allowed := cardinality(changed) = 0 AND CASE
        WHEN OLD.status IN ('done', 'cancelled', 'superseded') THEN false
        WHEN OLD.status = 'failed' THEN
            NEW.status IN ('done', 'superseded')
            OR (NEW.status IN ('todo', 'doing') AND current_setting('dualrun.reopen', true) = 'on')
        ELSE true
    END;
    IF allowed THEN
        RETURN NEW;
    END IF;
    IF cardinality(changed) = 0 THEN
        PERFORM dualrun_refuse(OLD, 'status.refused', NEW.status, '{}'::jsonb);
    ELSE
        PERFORM dualrun_refuse(OLD, 'outcome.refused', NEW.status,
                               jsonb_build_object('columns', to_jsonb(changed)));
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER operations_forward_only ON operations;
CREATE TRIGGER operations_forward_only BEFORE UPDATE ON operations
    FOR EACH ROW EXECUTE FUNCTION dualrun_forward_only();
CREATE TRIGGER operations_kept BEFORE DELETE ON operations
    FOR EACH ROW EXECUTE FUNCTION dualrun_forward_only();
