CREATE TABLE inventory_stock (
    sku        TEXT PRIMARY KEY NOT NULL,
    on_hand    BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved   BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE inventory_reservations (
    order_id   TEXT PRIMARY KEY NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired')),
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX inventory_reservations_held_expiry ON inventory_reservations (expires_at) WHERE status = 'held';

CREATE TABLE inventory_reservation_lines (
    order_id TEXT NOT NULL REFERENCES inventory_reservations (order_id),
    sku      TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);

CREATE TABLE inventory_adjustments (
    id         TEXT PRIMARY KEY NOT NULL,
    sku        TEXT NOT NULL,
    delta      BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX inventory_adjustments_sku ON inventory_adjustments (sku, created_at);

CREATE TABLE inventory_idempotency_keys (
    caller     TEXT NOT NULL,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX inventory_idempotency_keys_created ON inventory_idempotency_keys (created_at);
