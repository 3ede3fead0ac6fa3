-- Reverts 0001_product_price.sql, newest object first. The schema stays: it holds the
-- journal of its migrations. The repeatable view R__current_price.sql reads both tables:
-- it goes first (the next migrate makes it again, since a rollback makes repeatables due).
DROP VIEW IF EXISTS pricing.current_price;
--> statement-breakpoint
DROP TABLE pricing.price;
--> statement-breakpoint
DROP TABLE pricing.product;
--> statement-breakpoint
DROP TYPE pricing.price_kind;
