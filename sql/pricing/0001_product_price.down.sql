-- Reverts 0001_product_price.sql, newest object first. The schema stays: it holds the
-- journal of its migrations.
DROP TABLE pricing.price;
--> statement-breakpoint
DROP TABLE pricing.product;
--> statement-breakpoint
DROP TYPE pricing.price_kind;
