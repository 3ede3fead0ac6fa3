-- Tax types (VAT rates) that products and order lines will refer to by code.
-- Reference data, loaded by seeds/3_tax_types.sql.
-- rate is a fraction, not a percentage: 0.2000 is 20 %. Four decimals cover
-- rates such as 5.5 % (0.0550) and 2.1 % (0.0210).
-- A rate that changes gets a new code (or the old one is set inactive) rather
-- than an edit, once anything stores the code: history must keep its rate.
CREATE TABLE pricing.tax_type (
    code        text          NOT NULL PRIMARY KEY,
    description text          NOT NULL,
    rate        numeric(6,4)  NOT NULL,
    -- Retired rates stay for old documents; only active ones are offered.
    active      boolean       NOT NULL DEFAULT true,
    CONSTRAINT tax_type_rate_range CHECK (rate >= 0 AND rate <= 1)
);
