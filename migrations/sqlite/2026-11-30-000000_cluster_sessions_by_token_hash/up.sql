-- Same change as the MySQL migration of the same name: the sessions table
-- keyed by token_hash. As a WITHOUT ROWID table, SQLite stores each row in
-- the leaf of that key, so a token check is one B-tree search instead of
-- one in the token_hash index and another in the table. SQLite cannot
-- change a table's key, so the table is rebuilt (no other table refers to
-- it); id keeps a unique index of its own.
CREATE TABLE authentication_tokens_new (
    id              TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL PRIMARY KEY,
    created_at      TIMESTAMP NOT NULL,
    last_updated_at TIMESTAMP NOT NULL,
    user_agent      TEXT NULL,
    label           TEXT NULL
) WITHOUT ROWID;
INSERT INTO authentication_tokens_new
    (id, user_id, token_hash, created_at, last_updated_at, user_agent, label)
SELECT id, user_id, token_hash, created_at, last_updated_at, user_agent, label
FROM authentication_tokens;
DROP TABLE authentication_tokens;
ALTER TABLE authentication_tokens_new RENAME TO authentication_tokens;
CREATE UNIQUE INDEX authentication_tokens_id_key ON authentication_tokens (id);
CREATE INDEX authentication_tokens_user_id_idx ON authentication_tokens (user_id);
