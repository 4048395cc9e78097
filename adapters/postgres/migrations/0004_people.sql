-- The person an audit record's identity belongs to (policy people:), and
-- whether that identity was only asserted (opsbot run --as) rather than
-- proven by a chat platform.

ALTER TABLE audit ADD COLUMN person        text    NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN self_asserted boolean NOT NULL DEFAULT false;
