-- Actions in flight: one row from the moment an action that changes
-- something is recorded as started (audit kind 'started', whose seq is
-- started_seq) until its outcome is recorded. A row whose lease lapsed
-- belongs to a replica that died between start and outcome: any replica
-- deletes it and records the action as interrupted, once.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

CREATE TABLE actions (
	request_id    TEXT    PRIMARY KEY,
	started_seq   INTEGER NOT NULL, -- audit.seq
	platform      TEXT    NOT NULL,
	holder        TEXT    NOT NULL,
	lease_expires INTEGER NOT NULL
) STRICT;

CREATE INDEX actions_lease ON actions (lease_expires);
