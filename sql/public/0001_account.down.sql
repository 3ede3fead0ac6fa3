-- Reverts 0001_account.sql. The table takes its index and trigger with it; the function
-- goes last, and only once no other schema's trigger uses it (revert those first).
DROP TABLE public.account;
--> statement-breakpoint
DROP FUNCTION public.touch_updated_at();
