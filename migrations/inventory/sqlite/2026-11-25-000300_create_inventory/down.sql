DROP TABLE inventory_idempotency_keys;
DROP TABLE inventory_adjustments;
DROP TABLE inventory_reservation_lines;
DROP TABLE inventory_reservations;
DROP TABLE inventory_stock;
