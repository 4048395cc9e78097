-- The slash commands opsbot registered itself on a chat server (opsbot
-- mattermost register): the SHA-256 of each command's token, so that every
-- process verifies commands against the store. updated is microseconds
-- since the Unix epoch.

CREATE TABLE command_tokens (
	platform     TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	team         TEXT    NOT NULL,
	trigger      TEXT    NOT NULL,
	token_sha256 TEXT    NOT NULL CHECK (length(token_sha256) = 64),
	updated      INTEGER NOT NULL,
	PRIMARY KEY (platform, id)
) STRICT;
