-- migrator: lock-timeout=5s
-- public.account is read on every request. ADD COLUMN needs an ACCESS
-- EXCLUSIVE lock for a moment; if a long transaction holds the table we would
-- queue behind it and block every login queued behind us. Better to fail
-- fast and re-run than to stall the site.

-- Nullable, no default: metadata-only change, no table rewrite.
-- NULL means "never logged in since we started tracking".
ALTER TABLE public.account
    ADD COLUMN last_login_at timestamptz;
--> statement-breakpoint

COMMENT ON COLUMN public.account.last_login_at IS
    'Set by the app on successful login; NULL = no login recorded since this column was added.';
