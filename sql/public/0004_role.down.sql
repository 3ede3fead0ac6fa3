-- migrator: lock-timeout=5s
-- Reverts 0004_role.sql: the grants first, then the roles they point at.
DROP TABLE public.account_role;
--> statement-breakpoint
DROP TABLE public.role;
