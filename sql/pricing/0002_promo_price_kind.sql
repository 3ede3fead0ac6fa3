-- Marketing wants promo prices (coupon-driven) kept apart from plain 'sale'.
-- Appending an enum value takes no table rewrite.
ALTER TYPE pricing.price_kind ADD VALUE IF NOT EXISTS 'promo' AFTER 'sale';
--> statement-breakpoint

-- Must be a separate chunk: a new enum value cannot be used until the ALTER TYPE commits.
-- Promo prices currently in force, for the storefront banner.
CREATE VIEW pricing.active_promo_price AS
SELECT p.id,
       p.product_id,
       pr.sku,
       pr.name,
       p.amount,
       p.currency,
       p.valid
  FROM pricing.price AS p
  JOIN pricing.product AS pr ON pr.id = p.product_id
 WHERE p.kind = 'promo'
   AND pr.active
   AND p.valid @> now();
