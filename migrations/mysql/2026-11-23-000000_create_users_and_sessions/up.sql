-- Ids are UUIDv7 strings computed in Rust (MySQL has no RETURNING), stored as
-- ASCII so the primary key stays 36 bytes, with a binary collation so that
-- an id in other letter case is a different (unknown) id, as on SQLite. Emails are stored normalised
-- (trimmed, lower-cased) and compared byte-wise.
CREATE TABLE users (
    id            CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    email         VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    DATETIME(6) NOT NULL,
    updated_at    DATETIME(6) NOT NULL,
    last_login_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY users_email_key (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- token_hash is the SHA-256 digest of the token; the token itself is never
-- stored. last_updated_at is deliberately not indexed: every sliding bump
-- would have to rewrite that index too.
CREATE TABLE authentication_tokens (
    id              CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    token_hash      BINARY(32) NOT NULL,
    created_at      DATETIME(6) NOT NULL,
    last_updated_at DATETIME(6) NOT NULL,
    user_agent      VARCHAR(255) NULL,
    label           VARCHAR(100) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY authentication_tokens_token_hash_key (token_hash),
    KEY authentication_tokens_user_id_idx (user_id),
    CONSTRAINT authentication_tokens_user_id_fk
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
