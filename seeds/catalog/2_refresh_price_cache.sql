-- migrator: always-run
-- Rebuilds pricing.current_price_cache from pricing.price on every seed run.
-- All chunks run in one transaction: readers keep seeing the old rows until
-- the commit, then the new ones; never an empty or half-built cache.
-- DELETE, not TRUNCATE: TRUNCATE takes an ACCESS EXCLUSIVE lock, so every
-- storefront read would queue behind the refresh (and everything after them
-- behind those reads), and it is not MVCC-safe: a transaction with an older
-- snapshot would see the table empty. DELETE only takes ROW EXCLUSIVE, which
-- plain SELECTs never wait for. The table is small; autovacuum clears the dead rows.

-- Two refreshes at once would each delete only the rows they can see and then
-- collide on the primary key. SHARE ROW EXCLUSIVE conflicts with itself (and
-- with writers) but not with ACCESS SHARE: refreshes queue, readers do not.
LOCK TABLE pricing.current_price_cache IN SHARE ROW EXCLUSIVE MODE;
--> statement-breakpoint

-- The cache has one currency per product. Refuse loudly, naming the products,
-- rather than label one currency's amount with another; the cache is untouched.
DO $guard$
DECLARE
    v_skus text;
BEGIN
    SELECT string_agg(s.sku, ', ' ORDER BY s.sku)
      INTO v_skus
      FROM (SELECT pr.sku
              FROM pricing.price AS p
              JOIN pricing.product AS pr ON pr.id = p.product_id
             WHERE pr.active
               AND p.valid @> now()
             GROUP BY pr.sku
            HAVING count(DISTINCT p.currency) > 1) AS s;
    IF v_skus IS NOT NULL THEN
        RAISE EXCEPTION 'pricing.current_price_cache: products with current prices in several currencies: %', v_skus
            USING HINT = 'Close the prices in the wrong currency (upper bound of valid), then seed again.';
    END IF;
END;
$guard$;
--> statement-breakpoint

DELETE FROM pricing.current_price_cache;
--> statement-breakpoint

-- "Currently valid" as in pricing.active_promo_price: valid @> now(), active
-- products only. now() is the transaction start, one instant for the whole
-- refresh. Nothing prevents two overlapping prices of one kind (no EXCLUDE
-- constraint), so DISTINCT ON keeps the one that started last, and the
-- conditional aggregates then put one amount per kind in its column.
-- A product with no valid price at all gets no row (there is no currency to give it).
WITH current_price AS (
    SELECT DISTINCT ON (p.product_id, p.kind)
           p.product_id, p.kind, p.amount, p.currency
      FROM pricing.price AS p
     WHERE p.valid @> now()
     ORDER BY p.product_id, p.kind, lower(p.valid) DESC, p.id DESC
)
INSERT INTO pricing.current_price_cache
       (product_id, sku, list_amount, sale_amount, promo_amount, currency, refreshed_at)
SELECT pr.id,
       pr.sku,
       max(cp.amount) FILTER (WHERE cp.kind = 'list'),
       max(cp.amount) FILTER (WHERE cp.kind = 'sale'),
       max(cp.amount) FILTER (WHERE cp.kind = 'promo'),
       min(cp.currency),
       now()
  FROM current_price AS cp
  JOIN pricing.product AS pr ON pr.id = cp.product_id
 WHERE pr.active
 GROUP BY pr.id, pr.sku;
