-- migrator: lock-timeout=5s
-- Application roles (who may do what in the app; nothing to do with PostgreSQL
-- roles) and their grants to accounts. The role names themselves are reference
-- data, loaded by seeds/1_roles.sql.
-- The FK to public.account briefly takes a SHARE ROW EXCLUSIVE lock on it,
-- which blocks logins writing last_login_at: fail fast rather than queue
-- behind a long transaction, as in 0002.

-- Natural key: the name is what code checks ("admin"), so FKs point at it.
CREATE TABLE public.role (
    name        text NOT NULL PRIMARY KEY,
    description text NOT NULL
);
--> statement-breakpoint

-- CASCADE on account: a grant means nothing without its account.
-- RESTRICT on role: dropping a role that is still granted is a mistake;
-- ON UPDATE CASCADE lets a role be renamed without touching every grant.
-- The primary key serves "roles of account X".
CREATE TABLE public.account_role (
    account_id bigint NOT NULL REFERENCES public.account (id) ON DELETE CASCADE,
    role       text   NOT NULL REFERENCES public.role (name) ON UPDATE CASCADE ON DELETE RESTRICT,
    PRIMARY KEY (account_id, role)
);
--> statement-breakpoint

-- "Who are the admins", and the FK check when a role is deleted or renamed.
-- New, empty table: plain build.
CREATE INDEX account_role_role_idx ON public.account_role (role);
