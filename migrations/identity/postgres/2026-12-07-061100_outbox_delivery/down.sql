DROP INDEX identity_outbox_delivered;
DROP INDEX identity_outbox_undelivered;
ALTER TABLE identity_outbox DROP COLUMN refusals;
