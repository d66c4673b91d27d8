DROP INDEX ordering_outbox_due;
CREATE INDEX ordering_outbox_due ON ordering_outbox (next_attempt_at);
DROP INDEX ordering_outbox_delivered;
DROP INDEX ordering_outbox_undelivered;
ALTER TABLE ordering_outbox DROP COLUMN refusals;
