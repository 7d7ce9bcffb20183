-- Image pushes (the version map), releases, the outbox of provider calls,
-- and what portcall knows about GitHub App installations.

-- Every manifest push: which component, tag and digest, when, and (once
-- resolved) the source commit. A tag that moves keeps its history here.
CREATE TABLE image_pushes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_row  BIGINT  NOT NULL UNIQUE REFERENCES deliveries (id),
    source        TEXT    NOT NULL,           -- [[sources]] name (registry API)
    component     TEXT    NOT NULL,
    image         TEXT    NOT NULL,           -- registry/repository
    tag           TEXT,                       -- NULL for a push by digest
    digest        TEXT    NOT NULL,
    pushed_at     BIGINT  NOT NULL,
    commit_sha    TEXT,                       -- once resolved
    commit_origin TEXT CHECK (commit_origin IN ('label', 'tag', 'build')),
    source_url    TEXT,                       -- org.opencontainers.image.source
    resolved_at   BIGINT
);
CREATE INDEX image_pushes_by_tag ON image_pushes (component, tag, pushed_at);
CREATE INDEX image_pushes_by_commit ON image_pushes (commit_sha);

-- A release: a pushed tag that matched the component's release_tags.
CREATE TABLE releases (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT    NOT NULL,             -- {component}-{tag}
    component   TEXT    NOT NULL,
    image       TEXT    NOT NULL,
    tag         TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    repository  TEXT    NOT NULL,             -- github:owner/repo or gitlab:group/project
    commit_sha  TEXT,
    source_url  TEXT,
    created_at  BIGINT  NOT NULL,
    UNIQUE (component, digest, tag)
);
CREATE INDEX releases_by_component ON releases (component, id);

-- The outbox: one row per provider call to make (or registry read), enqueued
-- in the transaction that decided it. dedupe_key makes enqueuing idempotent.
CREATE TABLE jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT    NOT NULL,
    dedupe_key       TEXT    NOT NULL UNIQUE,
    payload          TEXT    NOT NULL,        -- JSON
    repository       TEXT,                    -- the provider repository, if any
    release_id       BIGINT  REFERENCES releases (id),
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'done', 'dead', 'skipped')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    result           TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX jobs_claimable ON jobs (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX jobs_by_state ON jobs (state, id);

-- The last commit status portcall posted per (repository, sha, context), so
-- an identical one is not posted again.
CREATE TABLE posted_statuses (
    repository  TEXT    NOT NULL,
    commit_sha  TEXT    NOT NULL,
    context     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    description TEXT    NOT NULL,
    target_url  TEXT,
    posted_at   BIGINT  NOT NULL,
    PRIMARY KEY (repository, commit_sha, context)
);

-- GitHub App installation per repository, learnt from webhook payloads.
CREATE TABLE github_installations (
    repository      TEXT    PRIMARY KEY,      -- owner/repo
    installation_id BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
