ALTER TABLE authentication_tokens
    DROP PRIMARY KEY,
    DROP KEY authentication_tokens_id_key,
    ADD PRIMARY KEY (id),
    ADD UNIQUE KEY authentication_tokens_token_hash_key (token_hash);
