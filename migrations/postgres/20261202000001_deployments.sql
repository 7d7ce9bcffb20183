-- Deployment reports from CD (POST /api/v1/releases/{id}/deployments), and
-- the order in which the outbox posts them.

-- One row per report: a release's state in an environment, as reported.
-- GitHub's deployment (one per release and environment) is remembered on
-- the reports that reached it, so later reports add their status to it.
CREATE TABLE deployments (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    release_id             BIGINT  NOT NULL REFERENCES releases (id),
    environment            TEXT    NOT NULL,
    state                  TEXT    NOT NULL
                           CHECK (state IN ('in_progress', 'success', 'failure', 'inactive')),
    url                    TEXT,
    log_url                TEXT,
    reported_at            BIGINT  NOT NULL,
    provider_deployment_id BIGINT            -- GitHub's deployment id, once created
);
CREATE INDEX deployments_by_release ON deployments (release_id, environment, id);

-- Pending jobs that share a sequence_key run one at a time, oldest first:
-- a later deployment status must never overtake an earlier one that is
-- waiting for a retry.
ALTER TABLE jobs ADD COLUMN sequence_key TEXT;
CREATE INDEX jobs_in_sequence ON jobs (sequence_key, id)
    WHERE state = 'pending' AND sequence_key IS NOT NULL;
