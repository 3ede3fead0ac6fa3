-- Customer accounts. Everything else (orders, later billing) hangs off
-- public.account, so it lives in public and runs before the other schemas.

-- No citext available: email keeps the case the user typed (for display),
-- uniqueness is enforced case-insensitively by the lower(email) index below.
CREATE TABLE public.account (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text        NOT NULL,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Trim in the app, but refuse what slips through: ' a@b.c' and 'a@b.c'
    -- would otherwise be two different accounts.
    CONSTRAINT account_email_trimmed CHECK (email = btrim(email) AND email <> '')
);
--> statement-breakpoint

-- Table is brand new and empty, so a plain (locking) build is fine here.
-- Login lookups must use WHERE lower(email) = lower($1) to hit this index.
CREATE UNIQUE INDEX account_email_lower_key ON public.account (lower(email));
--> statement-breakpoint

-- Shared by every table with an updated_at column, in every schema.
-- now() is the transaction start time, so all rows touched by one
-- transaction get the same stamp, which is what we want for auditing.
CREATE FUNCTION public.touch_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
--> statement-breakpoint

-- WHEN clause: a no-op UPDATE (same values) must not bump updated_at,
-- otherwise sync jobs that re-save unchanged rows look like real edits.
CREATE TRIGGER account_touch_updated_at
    BEFORE UPDATE ON public.account
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION public.touch_updated_at();
