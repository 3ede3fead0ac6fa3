-- Reverts 0001_orders.sql, newest object first. The schema stays: it holds the journal.
DROP FUNCTION sale.order_total(bigint);
--> statement-breakpoint
DROP TABLE sale.order_line;
--> statement-breakpoint
DROP TABLE sale.orders;
