-- A small demo catalogue, so pricing.current_price_cache has something to show.
-- Re-runnable: products are keyed by sku and never overwritten (the back
-- office may have renamed them); a price is inserted only when its product has
-- no price of that kind at all, so prices edited since are not duplicated.

INSERT INTO pricing.product (sku, name)
VALUES ('TSHIRT-ORG-M', 'Organic cotton T-shirt, size M'),
       ('MUG-CER-350',  'Ceramic mug, 350 ml'),
       ('TOTE-CANVAS',  'Canvas tote bag')
ON CONFLICT (sku) DO NOTHING;
--> statement-breakpoint

-- valid is [from, to). The mug has an expired list price before its current
-- one, to show that the cache keeps only prices valid now. Both mug rows are
-- inserted together: NOT EXISTS sees the table as it was before this statement.
-- The sale and promo prices end after 30 and 7 days, as such prices do.
INSERT INTO pricing.price (product_id, kind, amount, currency, valid)
SELECT pr.id, v.kind, v.amount, 'EUR', v.valid
  FROM (VALUES
        ('TSHIRT-ORG-M', 'list'::pricing.price_kind,  25.00,
             tstzrange(now(), NULL, '[)')),
        ('TSHIRT-ORG-M', 'sale'::pricing.price_kind,  19.90,
             tstzrange(now(), now() + interval '30 days', '[)')),
        ('MUG-CER-350',  'list'::pricing.price_kind,  11.00,
             tstzrange(now() - interval '1 year', now() - interval '1 day', '[)')),
        ('MUG-CER-350',  'list'::pricing.price_kind,  12.50,
             tstzrange(now() - interval '1 day', NULL, '[)')),
        ('TOTE-CANVAS',  'list'::pricing.price_kind,   9.00,
             tstzrange(now(), NULL, '[)')),
        ('TOTE-CANVAS',  'promo'::pricing.price_kind,  7.50,
             tstzrange(now(), now() + interval '7 days', '[)'))
       ) AS v (sku, kind, amount, valid)
  JOIN pricing.product AS pr ON pr.sku = v.sku
 WHERE NOT EXISTS (
           SELECT 1
             FROM pricing.price AS p
            WHERE p.product_id = pr.id
              AND p.kind = v.kind
       );
