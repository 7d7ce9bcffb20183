-- The web dashboard: sessions, each delivery's processing history, and the
-- delivery that caused each outbox job. Times are Unix ms.

-- A signed-in browser. The cookie holds a 256-bit random token; only its
-- SHA-256 is stored, so a copy of the database opens no session. `caller`
-- is 'admin' or a service account id, checked again on every request: a
-- revoked account's sessions end with it, and an admin session ends when
-- admin.token changes (`admin_token_hash`, the SHA-256 of the token it
-- signed in with, no longer matches).
CREATE TABLE dashboard_sessions (
    token_hash  TEXT    PRIMARY KEY,
    caller      TEXT    NOT NULL,
    admin_token_hash TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at);

-- One row per processing attempt and per replay of a delivery, written in
-- the transaction that records its outcome.
CREATE TABLE delivery_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_row INTEGER NOT NULL REFERENCES deliveries (id),
    at           INTEGER NOT NULL,
    action       TEXT    NOT NULL
                 CHECK (action IN ('processed', 'ignored', 'failed', 'retry', 'replayed')),
    detail       TEXT,                        -- the outcome or the error
    actor        TEXT                         -- the worker, or who replayed it
);
CREATE INDEX delivery_history_by_delivery ON delivery_history (delivery_row, id);

-- The delivery whose processing enqueued the job (NULL: the API did).
ALTER TABLE jobs ADD COLUMN delivery_row INTEGER REFERENCES deliveries (id);
CREATE INDEX jobs_by_delivery ON jobs (delivery_row) WHERE delivery_row IS NOT NULL;
