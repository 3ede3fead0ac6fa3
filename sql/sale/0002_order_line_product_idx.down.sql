-- Reverts 0002_order_line_product_idx.sql without blocking writes, like its build.
DROP INDEX CONCURRENTLY IF EXISTS sale.order_line_product_id_idx;
