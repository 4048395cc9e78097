-- Actions in flight: one row from the moment an action that changes
-- something is recorded as started (audit kind 'started', whose seq is
-- started_seq) until its outcome is recorded. A row whose lease lapsed
-- belongs to a replica that died between start and outcome: any replica
-- deletes it and records the action as interrupted, once.

CREATE TABLE actions (
	request_id    text        PRIMARY KEY,
	started_seq   bigint      NOT NULL, -- audit.seq; no foreign key: it would stop the TRUNCATE trigger saying why
	platform      text        NOT NULL,
	holder        text        NOT NULL,
	lease_expires timestamptz NOT NULL
);

CREATE INDEX actions_lease ON actions (lease_expires);
