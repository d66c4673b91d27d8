-- Identity's transactional outbox: events written with the change they announce (see shop_kernel::events).
CREATE TABLE identity_outbox (
    id              TEXT PRIMARY KEY NOT NULL,
    event_type      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    occurred_at     TIMESTAMP NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NULL,
    last_error      TEXT NULL,
    delivered_at    TIMESTAMP NULL
);
CREATE INDEX identity_outbox_due ON identity_outbox (next_attempt_at);
