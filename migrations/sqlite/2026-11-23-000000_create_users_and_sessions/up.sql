-- Same shape as the MySQL migration of the same name. Timestamps are stored
-- by diesel as ISO-8601 text, which sorts and compares chronologically.
CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    admin         BOOLEAN NOT NULL DEFAULT 0,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE authentication_tokens (
    id              TEXT NOT NULL PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    last_updated_at TIMESTAMP NOT NULL,
    user_agent      TEXT NULL,
    label           TEXT NULL
);
CREATE UNIQUE INDEX authentication_tokens_token_hash_key ON authentication_tokens (token_hash);
CREATE INDEX authentication_tokens_user_id_idx ON authentication_tokens (user_id);
