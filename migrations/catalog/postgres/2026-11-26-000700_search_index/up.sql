-- Search (`q`) is a case-insensitive substring of name or SKU: `search_text LIKE '%q%'` on the text lowercased
-- at write time. A trigram GIN index answers it without reading the table (for q of three characters or
-- more; shorter ones match so many products that walking the listing's own index finds a page at once).
-- pg_trgm is a trusted extension: the database owner may create it. Without `fastupdate`, a product write
-- updates the index at once instead of queueing in a pending list that every search would scan until the
-- next vacuum: products change rarely, searches are many.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX catalog_products_search ON catalog_products USING gin (search_text gin_trgm_ops) WITH (fastupdate = off);
