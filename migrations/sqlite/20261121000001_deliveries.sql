-- The inbox: one row per verified delivery, committed before the sender gets
-- its 2xx. Times are Unix milliseconds (INTEGER) so both backends compare
-- them the same way.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    source           TEXT    NOT NULL,           -- [[sources]] name
    delivery_id      TEXT    NOT NULL,           -- the sender's id
    event            TEXT    NOT NULL,           -- the sender's event name
    headers          TEXT    NOT NULL,           -- JSON object of kept headers
    content_type     TEXT,
    body             BLOB    NOT NULL,           -- as received, encoded as body_encoding says
    body_encoding    TEXT    NOT NULL DEFAULT 'identity'
                     CHECK (body_encoding IN ('identity', 'lz4')),
    received_at      INTEGER NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processed', 'ignored', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    event_kind       TEXT,                       -- normalized event, once parsed
    outcome          TEXT,                       -- what was done, or why not
    last_error       TEXT,
    processed_at     INTEGER,
    UNIQUE (source, delivery_id)
);

CREATE INDEX deliveries_claimable ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_status ON deliveries (status, id);
