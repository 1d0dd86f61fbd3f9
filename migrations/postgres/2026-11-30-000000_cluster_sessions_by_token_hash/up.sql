-- Same change as the MySQL migration of the same name: the sessions table
-- keyed by token_hash, id keeping a unique index of its own. PostgreSQL
-- keeps rows in a heap whatever the key, so this changes which index a
-- check descends, not where the row lies; it keeps the three backends'
-- keys the same.
ALTER TABLE authentication_tokens DROP CONSTRAINT authentication_tokens_pkey;
DROP INDEX authentication_tokens_token_hash_key;
ALTER TABLE authentication_tokens ADD PRIMARY KEY (token_hash);
CREATE UNIQUE INDEX authentication_tokens_id_key ON authentication_tokens (id);
