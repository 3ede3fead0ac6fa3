-- migrator: lock-timeout=5s
-- Reverts 0002_account_last_login.sql (its comment goes with the column). Same short lock
-- wait as the up file: public.account is read on every request.
ALTER TABLE public.account DROP COLUMN last_login_at;
