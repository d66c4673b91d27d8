DROP TABLE payments_idempotency_keys;
DROP TABLE payments_order_payments;
DROP TABLE payments_transactions;
DROP TABLE payments_wallets;
