-- The person an audit record's identity belongs to (policy people:), and
-- whether that identity was only asserted (opsbot run --as) rather than
-- proven by a chat platform.

ALTER TABLE audit ADD COLUMN person        TEXT    NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN self_asserted INTEGER NOT NULL DEFAULT 0 CHECK (self_asserted IN (0, 1));
