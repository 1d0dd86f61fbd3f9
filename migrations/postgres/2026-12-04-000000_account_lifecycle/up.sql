-- Same shape as the MySQL migration of the same name.
ALTER TABLE users
    ADD COLUMN email_verified_at TIMESTAMP NULL,
    ADD COLUMN disabled_at       TIMESTAMP NULL;

ALTER TABLE authentication_tokens ADD COLUMN client_ip VARCHAR(45) NULL;

CREATE TABLE one_time_codes (
    code_hash  BYTEA NOT NULL PRIMARY KEY,
    user_id    VARCHAR(36) COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    VARCHAR(32) COLLATE "C" NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX one_time_codes_user_purpose_key ON one_time_codes (user_id, purpose);
CREATE INDEX one_time_codes_expires_at_idx ON one_time_codes (expires_at);

CREATE TABLE outbox (
    id              VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
    user_id         VARCHAR(36) COLLATE "C" NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            VARCHAR(64) COLLATE "C" NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_next_attempt_at_idx ON outbox (next_attempt_at);
CREATE INDEX outbox_user_id_idx ON outbox (user_id);

CREATE TABLE security_events (
    id         VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
    user_id    VARCHAR(36) COLLATE "C" NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       VARCHAR(40) COLLATE "C" NOT NULL,
    session_id VARCHAR(36) COLLATE "C" NULL,
    actor_id   VARCHAR(36) COLLATE "C" NULL REFERENCES users (id) ON DELETE SET NULL,
    client_ip  VARCHAR(45) NULL,
    user_agent VARCHAR(255) NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX security_events_user_id_idx ON security_events (user_id, id);
CREATE INDEX security_events_created_at_idx ON security_events (created_at);
CREATE INDEX security_events_actor_id_idx ON security_events (actor_id);
