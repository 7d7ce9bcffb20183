-- A push from a registry whose payload names no digest (Quay, Docker Hub,
-- Nexus) is recorded with a NULL digest until the worker resolves its tag.
-- SQLite cannot drop NOT NULL: the table is rebuilt with the same columns,
-- constraints (UNIQUE delivery_row, the foreign key to deliveries) and
-- indexes. No table references image_pushes, so dropping it is safe with
-- foreign keys on; ids are kept, and so is the AUTOINCREMENT sequence.
CREATE TABLE image_pushes_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_row  INTEGER NOT NULL UNIQUE REFERENCES deliveries (id),
    source        TEXT    NOT NULL,           -- [[sources]] name (registry API)
    component     TEXT    NOT NULL,
    image         TEXT    NOT NULL,           -- registry/repository
    tag           TEXT,                       -- NULL for a push by digest
    digest        TEXT,                       -- NULL until a tag is resolved
    pushed_at     INTEGER NOT NULL,
    commit_sha    TEXT,                       -- once resolved
    commit_origin TEXT CHECK (commit_origin IN ('label', 'tag', 'build')),
    source_url    TEXT,                       -- org.opencontainers.image.source
    resolved_at   INTEGER
);
INSERT INTO image_pushes_new
    (id, delivery_row, source, component, image, tag, digest, pushed_at,
     commit_sha, commit_origin, source_url, resolved_at)
SELECT id, delivery_row, source, component, image, tag, digest, pushed_at,
       commit_sha, commit_origin, source_url, resolved_at
FROM image_pushes;
DROP TABLE image_pushes;
ALTER TABLE image_pushes_new RENAME TO image_pushes;
CREATE INDEX image_pushes_by_tag ON image_pushes (component, tag, pushed_at);
CREATE INDEX image_pushes_by_commit ON image_pushes (commit_sha);
