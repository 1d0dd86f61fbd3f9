DROP TABLE security_events;
DROP TABLE outbox;
DROP TABLE one_time_codes;
ALTER TABLE authentication_tokens DROP COLUMN client_ip;
ALTER TABLE users DROP COLUMN disabled_at;
ALTER TABLE users DROP COLUMN email_verified_at;
