CREATE TABLE catalog_products (
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
CREATE INDEX catalog_products_active ON catalog_products (active, id);
