-- A running request's lease: the replica that claimed it, and until when
-- the claim holds unless that replica renews it. A replica that dies
-- mid-action stops renewing; once the lease has lapsed any replica moves
-- the request to failed (abandoned). Kept after the request ends, for the
-- record.

ALTER TABLE approvals
	ADD COLUMN lease_holder  text,
	ADD COLUMN lease_expires timestamptz;

-- Requests claimed by a version without leases get one now, an hour long:
-- that version cannot renew it, and none of its actions runs that long.
UPDATE approvals
	SET lease_holder = 'unknown (claimed before leases)',
	    lease_expires = now() + interval '1 hour'
	WHERE state = 'running';

CREATE INDEX approvals_running ON approvals (lease_expires) WHERE state = 'running';
CREATE INDEX approvals_created ON approvals (created);
