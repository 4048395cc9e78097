-- Approval requests, their decisions, and the append-only audit log.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE approvals (
	id                 TEXT    PRIMARY KEY,
	state              TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'denied', 'expired')),
	command            TEXT    NOT NULL,
	line               TEXT    NOT NULL,
	args               TEXT    NOT NULL CHECK (json_valid(args)),  -- JSON array of strings
	hosts              TEXT    NOT NULL CHECK (json_valid(hosts)), -- JSON array of strings
	digest             TEXT    NOT NULL,
	impact             TEXT    NOT NULL,
	requester_platform TEXT    NOT NULL,
	requester_user     TEXT    NOT NULL,
	requester_name     TEXT    NOT NULL,
	requester_channel  TEXT    NOT NULL,
	request_id         TEXT    NOT NULL,
	needed             INTEGER NOT NULL CHECK (needed >= 1),
	created            INTEGER NOT NULL,
	expires            INTEGER NOT NULL,
	-- The outcome, set by Finish.
	outcome_status     TEXT,
	outcome_title      TEXT,
	output_sha256      TEXT,
	finished           INTEGER,
	duration_ns        INTEGER
) STRICT;

CREATE INDEX approvals_pending ON approvals (expires) WHERE state = 'pending';

CREATE TABLE approval_decisions (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT, -- the order decisions were made
	approval_id TEXT    NOT NULL REFERENCES approvals (id),
	principal   TEXT    NOT NULL,
	user_name   TEXT    NOT NULL,
	approve     INTEGER NOT NULL CHECK (approve IN (0, 1)),
	reason      TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	UNIQUE (approval_id, principal) -- a person votes once
) STRICT;

CREATE TABLE audit (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
	time          INTEGER NOT NULL,
	kind          TEXT    NOT NULL,
	request_id    TEXT    NOT NULL,
	platform      TEXT    NOT NULL,
	user_id       TEXT    NOT NULL,
	user_name     TEXT    NOT NULL,
	channel       TEXT    NOT NULL,
	line          TEXT    NOT NULL,
	command       TEXT    NOT NULL,
	hosts         TEXT    NOT NULL CHECK (json_valid(hosts)),
	approval_id   TEXT    NOT NULL, -- not a foreign key: the log also records unknown IDs
	result        TEXT    NOT NULL,
	message       TEXT    NOT NULL,
	duration_ns   INTEGER NOT NULL,
	output_sha256 TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_time ON audit (time);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only');
END;
