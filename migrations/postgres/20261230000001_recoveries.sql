-- Missed-delivery recovery: one row per GitHub delivery GUID portcall asked
-- GitHub to redeliver. Inserted before the request (the GUID is unique), so
-- a restart or a second replica never asks twice. Times are Unix ms.
CREATE TABLE github_recoveries (
    guid             TEXT    PRIMARY KEY,        -- X-GitHub-Delivery
    hook_delivery_id BIGINT  NOT NULL,           -- the attempt redelivered
    reason           TEXT    NOT NULL,           -- 'missing' or 'failed'
    requested_at     BIGINT  NOT NULL,
    result           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (result IN ('pending', 'requested', 'failed')),
    last_error       TEXT
);
