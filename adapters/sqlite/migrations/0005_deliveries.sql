-- Chat deliveries already handled (a Slack trigger ID, a digest of the
-- body), so that a retry or a replay reaching any process runs nothing.
-- Rows lapse at expires (microseconds since the Unix epoch).

CREATE TABLE deliveries (
	key     TEXT    PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT;

CREATE INDEX deliveries_expires ON deliveries (expires);
