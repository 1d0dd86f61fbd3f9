DROP TABLE authentication_tokens;
DROP TABLE users;
