-- Orders and the state of their checkout saga. `step` is what the saga does next; `lease_until` is when the
-- process driving it is presumed gone, after which the recovery task takes the order over;
-- `driving_until` is set while a client's request drives it (a duplicate request then gets 409).
CREATE TABLE ordering_orders (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled', 'failed')),
    step            TEXT NOT NULL CHECK (step IN ('reserve', 'charge', 'commit', 'compensate', 'cancel', 'done')),
    total_minor     BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    failure         TEXT NULL,
    failure_detail  TEXT NULL,
    idempotency_key TEXT NULL,
    request         TEXT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_until     TIMESTAMP NOT NULL,
    driving_until   TIMESTAMP NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX ordering_orders_by_user ON ordering_orders (user_id, id);
CREATE INDEX ordering_orders_unfinished ON ordering_orders (lease_until) WHERE step <> 'done';

CREATE TABLE ordering_order_lines (
    order_id         TEXT NOT NULL REFERENCES ordering_orders (id),
    position         INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    quantity         BIGINT NOT NULL,
    line_total_minor BIGINT NOT NULL,
    PRIMARY KEY (order_id, position)
);

-- Ordering's transactional outbox (see shop_kernel::events).
CREATE TABLE ordering_outbox (
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
CREATE INDEX ordering_outbox_due ON ordering_outbox (next_attempt_at);
