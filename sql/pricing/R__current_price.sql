-- The storefront's view of what each active product costs right now, one row per price
-- kind. A repeatable file: kept as the view's current definition, applied again (after the
-- numbered files, in one transaction) whenever this text changes.
CREATE OR REPLACE VIEW pricing.current_price AS
SELECT p.id AS product_id, p.sku, pr.kind, pr.amount, pr.currency
FROM pricing.product p
JOIN pricing.price pr ON pr.product_id = p.id AND pr.valid @> now()
WHERE p.active;
