-- Audit retention (policy audit.retain): records older than the cutoff may
-- be removed, after they were exported, and nothing else. The prune
-- transaction inserts its permit (the cutoff and the last record it
-- exported), deletes, and removes the permit before it commits, so no
-- other connection ever sees one. Updates stay refused.

CREATE TABLE audit_prune_permit (
	before      INTEGER NOT NULL,
	through_seq INTEGER NOT NULL
) STRICT;

DROP TRIGGER audit_no_delete;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
WHEN NOT EXISTS (SELECT 1 FROM audit_prune_permit p WHERE OLD.time < p.before AND OLD.seq <= p.through_seq)
BEGIN
	SELECT RAISE(ABORT, 'audit is append-only: only retention removes records, older than its cutoff, after exporting them');
END;
