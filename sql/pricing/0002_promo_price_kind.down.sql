-- Reverts 0002_promo_price_kind.sql as far as PostgreSQL allows: an enum value cannot be
-- removed, so 'promo' stays in pricing.price_kind (harmless: nothing refers to it any more).
DROP VIEW pricing.active_promo_price;
