-- The account lifecycle: email verification, suspension, one-time codes,
-- the message outbox and the security event trail.

-- NULL: not verified / not suspended; otherwise when it happened.
ALTER TABLE users
    ADD COLUMN email_verified_at DATETIME(6) NULL,
    ADD COLUMN disabled_at       DATETIME(6) NULL;

-- Where a session was opened from (the user agent is kept already).
ALTER TABLE authentication_tokens
    ADD COLUMN client_ip VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL;

-- One-time codes (password reset, email verification): only the SHA-256
-- digest of a code is stored. One live code per user and purpose: issuing a
-- new one deletes the old (the unique key makes that hold under races too).
CREATE TABLE one_time_codes (
    code_hash  BINARY(32) NOT NULL,
    user_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    purpose    VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (code_hash),
    UNIQUE KEY one_time_codes_user_purpose_key (user_id, purpose),
    KEY one_time_codes_expires_at_idx (expires_at),
    CONSTRAINT one_time_codes_user_id_fk
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Messages waiting to be delivered (SMTP or webhook), written in the same
-- transaction as the code they carry and deleted once delivered, or once
-- the code they carry has expired. next_attempt_at doubles as the lease of
-- the instance sending it: a sender claims a row by moving it forward.
CREATE TABLE outbox (
    id              CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
    kind            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    payload         TEXT NOT NULL,
    created_at      DATETIME(6) NOT NULL,
    expires_at      DATETIME(6) NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY outbox_next_attempt_at_idx (next_attempt_at),
    KEY outbox_user_id_idx (user_id),
    CONSTRAINT outbox_user_id_fk
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- What happened to each account. Never a secret. A user's events go with
-- the user; an admin's id as the actor of others' events is cleared.
CREATE TABLE security_events (
    id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
    kind       VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    session_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
    actor_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
    client_ip  VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
    user_agent VARCHAR(255) NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY security_events_user_id_idx (user_id, id),
    KEY security_events_created_at_idx (created_at),
    CONSTRAINT security_events_user_id_fk
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT security_events_actor_id_fk
        FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
