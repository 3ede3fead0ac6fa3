-- Catalogue and prices. Written in Drizzle's inline breakpoint style.
-- Harmless if the schema already exists.
CREATE SCHEMA IF NOT EXISTS pricing;--> statement-breakpoint
-- 'list' is the catalogue price, 'sale' a time-limited reduction.
CREATE TYPE pricing.price_kind AS ENUM ('list', 'sale');--> statement-breakpoint
-- sku is the business key used by the warehouse; id is what FKs point at so
-- a mistyped sku can be corrected without touching order history.
CREATE TABLE pricing.product (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku        text        NOT NULL,
    name       text        NOT NULL,
    -- Products are retired, never deleted: old order lines still point here.
    active     boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT product_sku_key UNIQUE (sku)
);--> statement-breakpoint
CREATE TRIGGER product_touch_updated_at
    BEFORE UPDATE ON pricing.product
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION public.touch_updated_at();--> statement-breakpoint
-- Prices are never updated in place: close the old range, insert a new row.
-- That keeps a full price history for disputes and reporting.
-- No EXCLUDE constraint against overlapping ranges: it needs btree_gist for
-- the product_id equality and we run without extensions; the app's
-- set-price routine closes the previous range in the same transaction.
CREATE TABLE pricing.price (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- RESTRICT: deleting a product with price history is a mistake; retire it.
    product_id bigint             NOT NULL REFERENCES pricing.product (id) ON DELETE RESTRICT,
    kind       pricing.price_kind NOT NULL DEFAULT 'list',
    amount     numeric(12,2)      NOT NULL,
    currency   char(3)            NOT NULL DEFAULT 'EUR',
    -- [from, to): upper bound NULL = open-ended, still valid.
    valid      tstzrange          NOT NULL DEFAULT tstzrange(now(), NULL, '[)'),
    created_at timestamptz        NOT NULL DEFAULT now(),
    -- Zero is allowed on purpose (free samples); negative never is.
    CONSTRAINT price_amount_not_negative CHECK (amount >= 0),
    CONSTRAINT price_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT price_valid_not_empty CHECK (NOT isempty(valid) AND lower(valid) IS NOT NULL)
);--> statement-breakpoint
-- Postgres does not index FK columns by itself; this also serves the
-- "current price of product X" lookup. Empty table, so no CONCURRENTLY.
CREATE INDEX price_product_id_kind_idx ON pricing.price (product_id, kind);
