ALTER TABLE authentication_tokens DROP CONSTRAINT authentication_tokens_pkey;
DROP INDEX authentication_tokens_id_key;
ALTER TABLE authentication_tokens ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX authentication_tokens_token_hash_key ON authentication_tokens (token_hash);
