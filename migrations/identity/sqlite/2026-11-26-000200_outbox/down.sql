DROP TABLE identity_outbox;
