-- One renewal, one operation, whatever created it (DESIGN §3): the legacy system's own
-- duplicates (its upstream batch, or an import, writing one key twice on the legacy engine:
-- the month-start twins) are superseded at birth like every other, instead of being left to
-- run. On a registry without a curExpDate check a twin renewed the domain a second time and
-- charged the customer again; now the later row never runs, points to the one that has the
-- renewal, and is still reported (a duplicate operation). Only data written around the
-- triggers (session_replication_role = replica: a bulk load, a hand fix) can run twice; the
-- reconciler finds what it does.
CREATE OR REPLACE FUNCTION dualrun_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF dualrun_has_renewal(owner.status) THEN
        NEW.status := 'superseded';
        NEW.superseded_by := owner.operation_id;
        NEW.finished_at := now();
    ELSE
        UPDATE renewal_keys SET operation_id = NEW.operation_id, engine = NEW.engine,
                                claimed_at = now()
        WHERE idempotency_key = NEW.idempotency_key;
    END IF;
    RETURN NEW;
END $$;
