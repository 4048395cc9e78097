-- The slash commands opsbot registered itself on a chat server (opsbot
-- mattermost register): the SHA-256 of each command's token, so that every
-- replica verifies commands against the store.

CREATE TABLE command_tokens (
	platform     text        NOT NULL,
	id           text        NOT NULL,
	team         text        NOT NULL,
	trigger      text        NOT NULL,
	token_sha256 text        NOT NULL CHECK (length(token_sha256) = 64),
	updated      timestamptz NOT NULL,
	PRIMARY KEY (platform, id)
);
