-- Search (`q`) is a case-insensitive substring of name or SKU. An FTS5 index with the trigram tokenizer answers
-- it (a phrase of three characters or more matches exactly the rows holding that substring). The index keeps
-- the rows' rowid, and SQLite may renumber an implicit rowid on VACUUM, so the table is rebuilt with an
-- explicit one (`seq INTEGER PRIMARY KEY`); `id` stays the key every query uses.
CREATE TABLE catalog_products_rebuilt (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
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
INSERT INTO catalog_products_rebuilt (id, sku, name, description, price_minor, currency, active, search_text, created_at, updated_at)
SELECT id, sku, name, description, price_minor, currency, active, search_text, created_at, updated_at
FROM catalog_products ORDER BY id;
DROP TABLE catalog_products;
ALTER TABLE catalog_products_rebuilt RENAME TO catalog_products;
CREATE INDEX catalog_products_active ON catalog_products (active, id);

CREATE VIRTUAL TABLE catalog_products_search USING fts5(
    search_text, content = 'catalog_products', content_rowid = 'seq', tokenize = 'trigram'
);
INSERT INTO catalog_products_search (catalog_products_search) VALUES ('rebuild');
CREATE TRIGGER catalog_products_search_insert AFTER INSERT ON catalog_products BEGIN
    INSERT INTO catalog_products_search (rowid, search_text) VALUES (new.seq, new.search_text);
END;
CREATE TRIGGER catalog_products_search_delete AFTER DELETE ON catalog_products BEGIN
    INSERT INTO catalog_products_search (catalog_products_search, rowid, search_text)
    VALUES ('delete', old.seq, old.search_text);
END;
CREATE TRIGGER catalog_products_search_update AFTER UPDATE OF search_text ON catalog_products BEGIN
    INSERT INTO catalog_products_search (catalog_products_search, rowid, search_text)
    VALUES ('delete', old.seq, old.search_text);
    INSERT INTO catalog_products_search (rowid, search_text) VALUES (new.seq, new.search_text);
END;
