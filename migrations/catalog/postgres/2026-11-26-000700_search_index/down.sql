DROP INDEX catalog_products_search;
