-- Same shape as the MySQL migration of the same name.
CREATE TABLE throttle_buckets (
    bucket CHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
    tat    TIMESTAMP NOT NULL
);
CREATE INDEX throttle_buckets_tat_idx ON throttle_buckets (tat);
