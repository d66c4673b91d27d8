-- Idempotency keys move onto the kernel's service: a key is 'running' until its outcome is stored.
ALTER TABLE inventory_idempotency_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'done' CHECK (state IN ('running', 'done'));
