-- Bulk relaunches (`dualrun relaunch`): one job per selection, one item per selected operation,
-- so an interrupted relaunch resumes where it stopped and relaunches nothing twice.
CREATE TABLE relaunch_jobs (
    job_id      bigserial PRIMARY KEY,
    selection   text NOT NULL,  -- canonical form of the selection: a rerun of it resumes the job
    params      jsonb NOT NULL DEFAULT '{}',
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished')),
    runs        int  NOT NULL DEFAULT 1,  -- processes that worked on it: 1 + resumes
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- At most one unfinished job per selection.
CREATE UNIQUE INDEX relaunch_jobs_open_selection_uidx ON relaunch_jobs (selection)
    WHERE status = 'running';

CREATE TABLE relaunch_items (
    job_id          bigint NOT NULL REFERENCES relaunch_jobs (job_id) ON DELETE CASCADE,
    operation_id    text NOT NULL REFERENCES operations (operation_id) ON DELETE CASCADE,
    engine          text NOT NULL,
    previous_status text NOT NULL,  -- the row as selected, restored if the relaunch fails
    previous_error  text,
    status          text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'done', 'skipped', 'failed')),
    action          text CHECK (action IN ('reset', 'fresh', 'requeue')),
    from_run_id     text,    -- the run that was reset (known before the reset is sent)
    reset_event_id  bigint,  -- the WorkflowTaskCompleted event it was reset to
    run_id          text,    -- the run that carries the renewal on
    detail          text,    -- why skipped or failed
    prepared_at     timestamptz,  -- the row was put back to todo (event `relaunched`)
    relaunched_at   timestamptz,  -- the reset, start or requeue was sent
    finished_at     timestamptz,
    PRIMARY KEY (job_id, operation_id)
);
CREATE INDEX relaunch_items_pending_idx ON relaunch_items (job_id, operation_id)
    WHERE status = 'pending';
