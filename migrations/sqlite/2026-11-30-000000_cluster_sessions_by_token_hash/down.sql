CREATE TABLE authentication_tokens_old (
    id              TEXT NOT NULL PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    last_updated_at TIMESTAMP NOT NULL,
    user_agent      TEXT NULL,
    label           TEXT NULL
);
INSERT INTO authentication_tokens_old
    (id, user_id, token_hash, created_at, last_updated_at, user_agent, label)
SELECT id, user_id, token_hash, created_at, last_updated_at, user_agent, label
FROM authentication_tokens;
DROP TABLE authentication_tokens;
ALTER TABLE authentication_tokens_old RENAME TO authentication_tokens;
CREATE UNIQUE INDEX authentication_tokens_token_hash_key ON authentication_tokens (token_hash);
CREATE INDEX authentication_tokens_user_id_idx ON authentication_tokens (user_id);
