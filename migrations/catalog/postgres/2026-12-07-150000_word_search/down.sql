DROP TABLE catalog_search_words;
DROP INDEX catalog_products_stale_words;
DROP INDEX catalog_products_all_words;
DROP INDEX catalog_products_title_words;
ALTER TABLE catalog_products DROP COLUMN words_version, DROP COLUMN all_words, DROP COLUMN title_words;
ALTER TABLE catalog_products ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE catalog_products SET search_text = lower(name) || ' ' || lower(sku);
ALTER TABLE catalog_products ALTER COLUMN search_text DROP DEFAULT;
CREATE INDEX catalog_products_search ON catalog_products USING gin (search_text gin_trgm_ops) WITH (fastupdate = off);
