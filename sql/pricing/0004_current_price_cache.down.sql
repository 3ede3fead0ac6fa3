-- Reverts 0004_current_price_cache.sql: a derived table, rebuilt by the seed process.
DROP TABLE pricing.current_price_cache;
