DROP INDEX ordering_outbox_delivered;
DROP INDEX ordering_outbox_undelivered;
ALTER TABLE ordering_outbox DROP COLUMN refusals;
