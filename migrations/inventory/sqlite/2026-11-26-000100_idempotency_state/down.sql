ALTER TABLE inventory_idempotency_keys DROP COLUMN state;
