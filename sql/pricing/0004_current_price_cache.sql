-- Denormalized read model for the storefront: one row per active product with
-- its currently valid list, sale and promo amounts side by side, so a product
-- page reads one row instead of aggregating pricing.price.
-- Derived data only: rebuilt by seeds/catalog/2_refresh_price_cache.sql (an
-- always-run seed); never write to it anywhere else.
-- An amount is NULL when no price of that kind is valid right now.
CREATE TABLE pricing.current_price_cache (
    -- CASCADE: a cache row must never keep a product from being deleted.
    product_id   bigint        NOT NULL PRIMARY KEY
                               REFERENCES pricing.product (id) ON DELETE CASCADE,
    -- Copied from pricing.product so listings need no join; refreshed with the rest.
    sku          text          NOT NULL,
    list_amount  numeric(12,2),
    sale_amount  numeric(12,2),
    promo_amount numeric(12,2),
    -- One currency per product: the refresh refuses products priced in several.
    currency     char(3)       NOT NULL,
    refreshed_at timestamptz   NOT NULL DEFAULT now()
);
--> statement-breakpoint

COMMENT ON TABLE pricing.current_price_cache IS
    'Derived from pricing.price by seeds/catalog/2_refresh_price_cache.sql; do not edit by hand.';
