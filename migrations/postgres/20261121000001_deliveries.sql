-- The inbox: one row per verified delivery, committed before the sender gets
-- its 2xx. Times are Unix milliseconds (BIGINT) so both backends compare
-- them the same way.
CREATE TABLE deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           TEXT    NOT NULL,           -- [[sources]] name
    delivery_id      TEXT    NOT NULL,           -- the sender's id
    event            TEXT    NOT NULL,           -- the sender's event name
    headers          TEXT    NOT NULL,           -- JSON object of kept headers
    content_type     TEXT,
    body             BYTEA   NOT NULL,           -- as received, encoded as body_encoding says
    body_encoding    TEXT    NOT NULL DEFAULT 'identity'
                     CHECK (body_encoding IN ('identity', 'lz4')),
    received_at      BIGINT  NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processed', 'ignored', 'failed')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    event_kind       TEXT,                       -- normalized event, once parsed
    outcome          TEXT,                       -- what was done, or why not
    last_error       TEXT,
    processed_at     BIGINT,
    UNIQUE (source, delivery_id)
);

CREATE INDEX deliveries_claimable ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_status ON deliveries (status, id);
