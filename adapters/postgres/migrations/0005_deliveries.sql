-- Chat deliveries already handled (a Slack trigger ID, a digest of the
-- body), so that a retry or a replay reaching any replica runs nothing.

CREATE TABLE deliveries (
	key     text        PRIMARY KEY,
	expires timestamptz NOT NULL
);

CREATE INDEX deliveries_expires ON deliveries (expires);
