-- One wallet per user; the balance never leaves 0..10^15 (conditional updates decide, these checks guard).
CREATE TABLE payments_wallets (
    user_id       TEXT PRIMARY KEY NOT NULL,
    balance_minor BIGINT NOT NULL CHECK (balance_minor >= 0 AND balance_minor <= 1000000000000000),
    updated_at    TIMESTAMP NOT NULL
);

-- The append-only ledger.
CREATE TABLE payments_transactions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('credit', 'charge', 'refund')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    order_id     TEXT,
    reason       TEXT,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX payments_transactions_user ON payments_transactions (user_id, id);

-- Each order's payment, the key that makes charge and refund idempotent. 'declined' keeps a refused charge's
-- outcome; 'refunded' with amount 0 is the tombstone of an order refunded before any charge.
CREATE TABLE payments_order_payments (
    order_id     TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    status       TEXT NOT NULL CHECK (status IN ('charged', 'declined', 'refunded')),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

CREATE TABLE payments_idempotency_keys (
    caller     TEXT NOT NULL,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,
    response   TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('running', 'done')),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX payments_idempotency_keys_created ON payments_idempotency_keys (created_at);
