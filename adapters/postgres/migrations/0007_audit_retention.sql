-- Audit retention (policy audit.retain): records older than the cutoff may
-- be removed, after they were exported, and nothing else. The prune
-- transaction inserts its permit (the cutoff and the last record it
-- exported), deletes, and removes the permit before it commits, so no
-- other transaction ever sees one. Updates and TRUNCATE stay refused.

CREATE TABLE audit_prune_permit (
	before      timestamptz NOT NULL,
	through_seq bigint      NOT NULL
);

CREATE FUNCTION audit_delete_pruned_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM audit_prune_permit p WHERE OLD.time < p.before AND OLD.seq <= p.through_seq) THEN
		RETURN OLD;
	END IF;
	RAISE EXCEPTION 'audit is append-only: only retention removes records, older than its cutoff, after exporting them';
END
$$;

DROP TRIGGER audit_no_update_or_delete ON audit;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_delete_pruned_only();
