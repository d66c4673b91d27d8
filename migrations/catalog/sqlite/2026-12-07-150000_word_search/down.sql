DROP TABLE catalog_search_words;
DROP TRIGGER catalog_words_update;
DROP TRIGGER catalog_words_delete;
DROP TRIGGER catalog_words_insert;
DROP TABLE catalog_all_words;
DROP TABLE catalog_title_words;
DROP INDEX catalog_products_stale_words;
ALTER TABLE catalog_products DROP COLUMN words_version;
ALTER TABLE catalog_products DROP COLUMN all_words;
ALTER TABLE catalog_products DROP COLUMN title_words;
ALTER TABLE catalog_products ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE catalog_products SET search_text = lower(name) || ' ' || lower(sku);
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
