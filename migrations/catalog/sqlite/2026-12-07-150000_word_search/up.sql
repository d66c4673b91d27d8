-- Search by words (modules/catalog/src/search.rs) replaces search by substring. The catalog cuts a product's
-- words itself (words.rs) and stores them as one space-separated string per field: `title_words` (name, and
-- every suffix of the SKU's words) and `all_words` (those and the description's). Two FTS5 tables index
-- them; their tokenizer only splits at the spaces (the words hold letters and digits alone) and keeps
-- diacritics, so SQLite matches exactly what PostgreSQL does. A prefix index of three characters lets a short
-- word that begins many stored words be read as one list (search.rs, `FTS5`).
--
-- Rows already here get their words from the catalog itself, in the background after start
-- (`words_version` 0: not cut yet); until then a search does not find them.
DROP TRIGGER catalog_products_search_insert;
DROP TRIGGER catalog_products_search_delete;
DROP TRIGGER catalog_products_search_update;
DROP TABLE catalog_products_search;
ALTER TABLE catalog_products DROP COLUMN search_text;
ALTER TABLE catalog_products ADD COLUMN title_words TEXT NOT NULL DEFAULT '';
ALTER TABLE catalog_products ADD COLUMN all_words TEXT NOT NULL DEFAULT '';
ALTER TABLE catalog_products ADD COLUMN words_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX catalog_products_stale_words ON catalog_products (id) WHERE words_version < 1;

CREATE VIRTUAL TABLE catalog_title_words USING fts5(
    title_words, content = 'catalog_products', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 0', prefix = '3'
);
CREATE VIRTUAL TABLE catalog_all_words USING fts5(
    all_words, content = 'catalog_products', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 0', prefix = '3'
);
CREATE TRIGGER catalog_words_insert AFTER INSERT ON catalog_products BEGIN
    INSERT INTO catalog_title_words (rowid, title_words) VALUES (new.seq, new.title_words);
    INSERT INTO catalog_all_words (rowid, all_words) VALUES (new.seq, new.all_words);
END;
CREATE TRIGGER catalog_words_delete AFTER DELETE ON catalog_products BEGIN
    INSERT INTO catalog_title_words (catalog_title_words, rowid, title_words)
    VALUES ('delete', old.seq, old.title_words);
    INSERT INTO catalog_all_words (catalog_all_words, rowid, all_words)
    VALUES ('delete', old.seq, old.all_words);
END;
CREATE TRIGGER catalog_words_update AFTER UPDATE OF title_words, all_words ON catalog_products BEGIN
    INSERT INTO catalog_title_words (catalog_title_words, rowid, title_words)
    VALUES ('delete', old.seq, old.title_words);
    INSERT INTO catalog_title_words (rowid, title_words) VALUES (new.seq, new.title_words);
    INSERT INTO catalog_all_words (catalog_all_words, rowid, all_words)
    VALUES ('delete', old.seq, old.all_words);
    INSERT INTO catalog_all_words (rowid, all_words) VALUES (new.seq, new.all_words);
END;

-- The vocabulary: every word some product holds, and how many hold it in the title and anywhere; the empty
-- word counts the products. SQLite compares text by bytes, the order a word's prefix range needs.
CREATE TABLE catalog_search_words (
    word     TEXT PRIMARY KEY NOT NULL,
    titles   BIGINT NOT NULL,
    products BIGINT NOT NULL
) WITHOUT ROWID;
