-- Service accounts: bearer tokens for CI and operators, each with scopes.
-- The token itself is shown once and never stored; token_hash is its
-- SHA-256 (the token carries 256 random bits, so a fast hash is enough).
CREATE TABLE service_accounts (
    id           TEXT    PRIMARY KEY,              -- sa_ and 32 hex digits
    name         TEXT    NOT NULL,
    description  TEXT,
    token_hash   TEXT    NOT NULL UNIQUE,          -- hex SHA-256 of the token
    scopes       TEXT    NOT NULL,                 -- space-separated
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT ,                          -- NULL: never
    revoked_at   BIGINT 
);
