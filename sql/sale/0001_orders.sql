-- Orders and their lines. Depends on public.account and pricing.product,
-- which is why sale runs last.
CREATE SCHEMA IF NOT EXISTS sale;
--> statement-breakpoint

-- Plural on purpose: ORDER is a reserved word and we don't want every query
-- to have to quote it.
CREATE TABLE sale.orders (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- RESTRICT: accounts with orders are anonymised, not deleted (bookkeeping).
    account_id bigint      NOT NULL REFERENCES public.account (id) ON DELETE RESTRICT,
    -- text + CHECK rather than an enum: statuses still change often, and
    -- editing a CHECK is easier than juggling enum values.
    status     text        NOT NULL DEFAULT 'open',
    placed_at  timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_status_check CHECK (status IN ('open', 'placed', 'paid', 'cancelled')),
    -- An order that left the cart must say when.
    CONSTRAINT orders_placed_at_check CHECK (status = 'open' OR placed_at IS NOT NULL)
);
--> statement-breakpoint

-- FK column, and "my orders" is the most common query. New table: plain build.
CREATE INDEX orders_account_id_idx ON sale.orders (account_id);
--> statement-breakpoint

CREATE TRIGGER orders_touch_updated_at
    BEFORE UPDATE ON sale.orders
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION public.touch_updated_at();
--> statement-breakpoint

-- unit_price is copied from pricing.price when the line is added: later price
-- changes must not rewrite what the customer agreed to pay.
-- The primary key covers lookups by order_id; product_id gets its own index
-- later, once we know the reports need it.
CREATE TABLE sale.order_line (
    order_id   bigint        NOT NULL REFERENCES sale.orders (id) ON DELETE CASCADE,
    line_no    integer       NOT NULL,
    product_id bigint        NOT NULL REFERENCES pricing.product (id) ON DELETE RESTRICT,
    quantity   integer       NOT NULL,
    unit_price numeric(12,2) NOT NULL,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_line_quantity_check CHECK (quantity > 0),
    CONSTRAINT order_line_unit_price_check CHECK (unit_price >= 0)
);
--> statement-breakpoint

-- Computed on demand rather than stored, so it can never drift from the lines.
-- Returns NULL for an unknown order (as opposed to 0 for an empty one) so
-- callers can tell the two apart.
CREATE FUNCTION sale.order_total(p_order_id bigint)
RETURNS numeric
LANGUAGE plpgsql
STABLE
AS $fn$
DECLARE
    v_total numeric;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sale.orders AS o WHERE o.id = p_order_id) THEN
        RETURN NULL;
    END IF;

    SELECT coalesce(sum(ol.quantity * ol.unit_price), 0)
      INTO v_total
      FROM sale.order_line AS ol
     WHERE ol.order_id = p_order_id;

    RETURN round(v_total, 2);
END;
$fn$;
