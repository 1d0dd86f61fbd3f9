-- Same shape as the MySQL migration of the same name.
CREATE TABLE throttle_buckets (
    bucket TEXT NOT NULL PRIMARY KEY,
    tat    TIMESTAMP NOT NULL
) WITHOUT ROWID;
CREATE INDEX throttle_buckets_tat_idx ON throttle_buckets (tat);
