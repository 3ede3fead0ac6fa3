-- The application roles every environment needs. Code checks these names, so
-- they live here rather than being typed in by hand.
-- Re-runnable: a role is added once; an edited description is applied, and an
-- unchanged one is left alone (the WHERE skips a pointless new row version).
INSERT INTO public.role (name, description)
VALUES ('admin',    'Full back-office access, including accounts and role grants'),
       ('staff',    'Back-office access to the catalogue, prices and orders'),
       ('customer', 'Storefront account: own profile and own orders')
ON CONFLICT (name) DO UPDATE
    SET description = EXCLUDED.description
    WHERE public.role.description IS DISTINCT FROM EXCLUDED.description;
