-- Approval requests, their decisions, and the append-only audit log.

CREATE TABLE approvals (
	id                 text        PRIMARY KEY,
	state              text        NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'denied', 'expired')),
	command            text        NOT NULL,
	line               text        NOT NULL,
	args               jsonb       NOT NULL, -- array of strings
	hosts              jsonb       NOT NULL, -- array of strings
	digest             text        NOT NULL,
	impact             text        NOT NULL,
	requester_platform text        NOT NULL,
	requester_user     text        NOT NULL,
	requester_name     text        NOT NULL,
	requester_channel  text        NOT NULL,
	request_id         text        NOT NULL,
	needed             integer     NOT NULL CHECK (needed >= 1),
	created            timestamptz NOT NULL,
	expires            timestamptz NOT NULL,
	-- The outcome, set by Finish.
	outcome_status     text,
	outcome_title      text,
	output_sha256      text,
	finished           timestamptz,
	duration_ns        bigint
);

CREATE INDEX approvals_pending ON approvals (expires) WHERE state = 'pending';

CREATE TABLE approval_decisions (
	seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the order decisions were made
	approval_id text        NOT NULL REFERENCES approvals (id),
	principal   text        NOT NULL,
	user_name   text        NOT NULL,
	approve     boolean     NOT NULL,
	reason      text        NOT NULL,
	at          timestamptz NOT NULL,
	UNIQUE (approval_id, principal) -- a person votes once
);

CREATE TABLE audit (
	seq           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time          timestamptz NOT NULL,
	kind          text        NOT NULL,
	request_id    text        NOT NULL,
	platform      text        NOT NULL,
	user_id       text        NOT NULL,
	user_name     text        NOT NULL,
	channel       text        NOT NULL,
	line          text        NOT NULL,
	command       text        NOT NULL,
	hosts         jsonb       NOT NULL,
	approval_id   text        NOT NULL, -- not a foreign key: the log also records unknown IDs
	result        text        NOT NULL,
	message       text        NOT NULL,
	duration_ns   bigint      NOT NULL,
	output_sha256 text        NOT NULL
);

CREATE INDEX audit_time ON audit (time);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit is append-only';
END
$$;

CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
