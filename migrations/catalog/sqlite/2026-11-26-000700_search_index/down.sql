DROP TRIGGER catalog_products_search_update;
DROP TRIGGER catalog_products_search_delete;
DROP TRIGGER catalog_products_search_insert;
DROP TABLE catalog_products_search;
CREATE TABLE catalog_products_unrebuilt (
    id          TEXT PRIMARY KEY NOT NULL,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    search_text TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
INSERT INTO catalog_products_unrebuilt
SELECT id, sku, name, description, price_minor, currency, active, search_text, created_at, updated_at
FROM catalog_products;
DROP TABLE catalog_products;
ALTER TABLE catalog_products_unrebuilt RENAME TO catalog_products;
CREATE INDEX catalog_products_active ON catalog_products (active, id);
