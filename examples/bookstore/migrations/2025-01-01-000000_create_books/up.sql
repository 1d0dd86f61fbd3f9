-- Ids are UUIDv7 strings made by the service: they sort by creation time.
-- created_by is latchkey's user id (there is no users table here: latchkey
-- owns the users).
CREATE TABLE books (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    author TEXT NOT NULL,
    year INTEGER,
    created_by TEXT NOT NULL
);
