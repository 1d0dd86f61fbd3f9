-- InnoDB stores a table's rows in the leaves of its primary key. Keyed by
-- id, a token check went down two B-trees: the unique index on token_hash,
-- then the primary key for the row. Keyed by token_hash, the check's one
-- descent ends at the row. With 1,000 sessions in use among 1,000,000
-- (bench/run.sh's scale scenario), checks then ran at 0.82-0.91 of their
-- speed on a 1,000-row table instead of 0.71-0.77 (medians of 3-round runs). id stays the session's
-- public name, with a unique index of its own, for the rarer lookups by id
-- (logout, revoke).
--
-- The primary key change rebuilds the table: 6-8 s per million sessions
-- on the 2-core benchmark machine, online (reads and writes continue).
ALTER TABLE authentication_tokens
    DROP PRIMARY KEY,
    DROP KEY authentication_tokens_token_hash_key,
    ADD PRIMARY KEY (token_hash),
    ADD UNIQUE KEY authentication_tokens_id_key (id);
