-- French VAT rates, as fractions (0.2000 = 20 %).
-- Re-runnable: a missing code is added; description and rate follow this file.
-- active is not touched: a rate someone retired stays retired.
INSERT INTO pricing.tax_type (code, description, rate)
VALUES ('standard', 'Standard VAT rate (20 %)',                          0.2000),
       ('reduced',  'Reduced VAT rate (5.5 %): food, books, energy',     0.0550),
       ('zero',     'Zero-rated or exempt (0 %): exports, intra-EU B2B', 0.0000)
ON CONFLICT (code) DO UPDATE
    SET description = EXCLUDED.description,
        rate        = EXCLUDED.rate
    WHERE (pricing.tax_type.description, pricing.tax_type.rate)
          IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.rate);
