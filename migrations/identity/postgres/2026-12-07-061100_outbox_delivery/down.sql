DROP INDEX identity_outbox_due;
CREATE INDEX identity_outbox_due ON identity_outbox (next_attempt_at);
DROP INDEX identity_outbox_delivered;
DROP INDEX identity_outbox_undelivered;
ALTER TABLE identity_outbox DROP COLUMN refusals;
