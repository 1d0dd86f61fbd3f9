-- Same shape as the MySQL migration of the same name. Ids are UUIDv7 text
-- computed in Rust, compared byte-wise (COLLATE "C", as MySQL's ascii_bin),
-- so that keyset pages follow creation order whatever the server's locale.
-- Emails are stored normalised and compared byte-wise too. Timestamps are
-- UTC, without a zone, like the other backends.
CREATE TABLE users (
    id            VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
    email         VARCHAR(254) COLLATE "C" NOT NULL,
    password_hash VARCHAR(255) COLLATE "C" NOT NULL,
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- token_hash is the SHA-256 digest of the token; the token itself is never
-- stored.
CREATE TABLE authentication_tokens (
    id              VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
    user_id         VARCHAR(36) COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      BYTEA NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    last_updated_at TIMESTAMP NOT NULL,
    user_agent      VARCHAR(255) NULL,
    label           VARCHAR(100) NULL
);
CREATE UNIQUE INDEX authentication_tokens_token_hash_key ON authentication_tokens (token_hash);
CREATE INDEX authentication_tokens_user_id_idx ON authentication_tokens (user_id);
