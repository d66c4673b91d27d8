-- Search by words (modules/catalog/src/search.rs) replaces search by substring. The catalog cuts a product's
-- words itself (words.rs) and stores them as one space-separated string per field: `title_words` (name, and
-- every suffix of the SKU's words) and `all_words` (those and the description's). The GIN indexes take the
-- words as lexemes verbatim (`array_to_tsvector`, no parser, no dictionary), so PostgreSQL matches exactly
-- what SQLite does. Without `fastupdate`, a write updates the index at once: products change rarely.
--
-- Rows already here get their words from the catalog itself, in the background after start
-- (`words_version` 0: not cut yet); until then a search does not find them.
DROP INDEX IF EXISTS catalog_products_search;
ALTER TABLE catalog_products DROP COLUMN search_text;
ALTER TABLE catalog_products
    ADD COLUMN title_words TEXT NOT NULL DEFAULT '',
    ADD COLUMN all_words TEXT NOT NULL DEFAULT '',
    ADD COLUMN words_version SMALLINT NOT NULL DEFAULT 0;
CREATE INDEX catalog_products_title_words ON catalog_products
    USING gin (array_to_tsvector(string_to_array(title_words, ' '))) WITH (fastupdate = off);
CREATE INDEX catalog_products_all_words ON catalog_products
    USING gin (array_to_tsvector(string_to_array(all_words, ' '))) WITH (fastupdate = off);
CREATE INDEX catalog_products_stale_words ON catalog_products (id) WHERE words_version < 1;

-- The vocabulary: every word some product holds, and how many hold it in the title and anywhere; the empty
-- word counts the products. Byte order (`C`), whatever the database's collation: a word's prefix range
-- (`word >= 'mug' AND word < 'mug' || U+10FFFF`) holds exactly the words it begins only in byte order.
CREATE TABLE catalog_search_words (
    word     TEXT COLLATE "C" PRIMARY KEY,
    titles   BIGINT NOT NULL,
    products BIGINT NOT NULL
);
