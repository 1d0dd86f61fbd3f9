-- The throttles' buckets, shared by every instance on this database (GCRA:
-- one "theoretical arrival time" per bucket). bucket is the SHA-256 (hex)
-- of the bucket's kind and key (an email or an address), never the key.
CREATE TABLE throttle_buckets (
    bucket CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tat    DATETIME(6) NOT NULL,
    PRIMARY KEY (bucket),
    KEY throttle_buckets_tat_idx (tat)
) ENGINE = InnoDB;
