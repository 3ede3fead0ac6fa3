-- Reverts 0003_account_last_login_idx.sql without blocking writes, like its build.
DROP INDEX CONCURRENTLY IF EXISTS public.account_last_login_at_idx;
