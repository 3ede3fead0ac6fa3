-- Sales-by-product reports and ON DELETE checks on pricing.product both scan
-- order_line by product_id, which the (order_id, line_no) key cannot serve.
-- order_line is now the busiest table we have: build without blocking
-- writes. CONCURRENTLY cannot run in a transaction, hence the chunk of its own.
-- An interrupted build leaves an INVALID index that IF NOT EXISTS would skip;
-- drop it (DROP INDEX CONCURRENTLY) before re-running.
CREATE INDEX CONCURRENTLY IF NOT EXISTS order_line_product_id_idx
    ON sale.order_line (product_id);
--> statement-breakpoint

COMMENT ON INDEX sale.order_line_product_id_idx IS
    'Sales-by-product reports; also keeps FK checks on pricing.product cheap.';
