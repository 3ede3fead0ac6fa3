"""Create the demo administrator account (MIGRATOR_DEMO_ADMIN_EMAIL) and grant it admin."""

from __future__ import annotations

import os
from typing import Any

import psycopg

EMAIL_VARIABLE = "MIGRATOR_DEMO_ADMIN_EMAIL"
DEFAULT_EMAIL = "admin@example.com"
DISPLAY_NAME = "Administrator"
ROLE = "admin"


def _email() -> str:
    # public.account refuses untrimmed or empty emails; an empty variable means the default.
    return os.environ.get(EMAIL_VARIABLE, "").strip() or DEFAULT_EMAIL


def run(conn: psycopg.Connection[Any]) -> None:
    """Create the account unless one with that email exists (any case), then grant admin.

    Runs inside the runner's transaction: no commit or rollback here.
    """
    email = _email()
    with conn.cursor() as cur:
        # The unique index is on the expression lower(email): ON CONFLICT must
        # name that expression, in its own parentheses, to infer the index.
        # An existing account keeps its display name.
        cur.execute(
            """
            INSERT INTO public.account (email, display_name)
            VALUES (%s, %s)
            ON CONFLICT ((lower(email))) DO NOTHING
            """,
            (email, DISPLAY_NAME),
        )
        # The role comes from seeds/1_roles.sql; if it is missing, the FK
        # violation says so rather than the grant being skipped silently.
        cur.execute(
            """
            INSERT INTO public.account_role (account_id, role)
            SELECT a.id, %s
              FROM public.account AS a
             WHERE lower(a.email) = lower(%s)
            ON CONFLICT (account_id, role) DO NOTHING
            """,
            (ROLE, email),
        )


def clean(conn: psycopg.Connection[Any]) -> None:
    """Remove the account run() created and its role grants.

    Only an account still named as run() created it is removed, so a real
    account that happens to use the address is left alone. An account that has
    placed orders cannot be deleted (sale.orders restricts it): the clean then
    fails and the runner rolls it back. Uses the same variable as run().
    """
    email = _email()
    with conn.cursor() as cur:
        cur.execute(
            """
            DELETE FROM public.account_role AS ar
             USING public.account AS a
             WHERE ar.account_id = a.id
               AND lower(a.email) = lower(%s)
               AND a.display_name = %s
            """,
            (email, DISPLAY_NAME),
        )
        cur.execute(
            """
            DELETE FROM public.account AS a
             WHERE lower(a.email) = lower(%s)
               AND a.display_name = %s
            """,
            (email, DISPLAY_NAME),
        )
