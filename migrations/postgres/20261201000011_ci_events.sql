-- What CI pipelines report: the metadata of releases they create, and build
-- events linking image digests (or image tags) to the commit they were
-- built from.
ALTER TABLE releases ADD COLUMN metadata TEXT;          -- JSON, as sent

CREATE TABLE builds (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id TEXT    NOT NULL DEFAULT '',
    build_id       TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    commit_sha     TEXT    NOT NULL,
    test_results   TEXT,                                -- JSON, as sent
    received_at    BIGINT  NOT NULL,
    UNIQUE (integration_id, build_id)
);

-- An image a build (or an artefact-version notice) produced: by digest, or
-- by image and tag when the digest is not known yet.
CREATE TABLE build_artifacts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    build_row   BIGINT  REFERENCES builds (id),
    name        TEXT,
    digest      TEXT,
    image       TEXT,
    tag         TEXT,
    commit_sha  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX build_artifacts_by_digest ON build_artifacts (digest);
CREATE INDEX build_artifacts_by_image_tag ON build_artifacts (image, tag);
