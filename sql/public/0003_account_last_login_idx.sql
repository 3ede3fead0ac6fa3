-- For the nightly "dormant accounts" report. By now account has real
-- traffic, so build without blocking writes. CONCURRENTLY cannot run inside a
-- transaction, hence its own chunk.
-- If a build is interrupted it leaves an INVALID index behind, and IF NOT
-- EXISTS would then skip it: check pg_index.indisvalid and DROP INDEX
-- CONCURRENTLY the leftover before re-running.
-- Partial: most rows are recent logins we never scan for; skipping NULLs
-- (never logged in) keeps the index small.
CREATE INDEX CONCURRENTLY IF NOT EXISTS account_last_login_at_idx
    ON public.account (last_login_at)
    WHERE last_login_at IS NOT NULL;
