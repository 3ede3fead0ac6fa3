-- Reverts 0003_tax_type.sql (the seeded tax types go with it).
DROP TABLE pricing.tax_type;
