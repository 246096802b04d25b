"""An accounts version, changed with every change to users or grants, which the catalog's
per-user filters check.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "accounts_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    # Starts at random, so that a database made again never repeats a version a process may
    # still hold a filter for. Servers of the previous version must not go on changing users
    # or grants after the upgrade: they would not move the version on.
    op.bulk_insert(table, [{"id": 1, "version": secrets.randbits(62)}])


def downgrade() -> None:
    op.drop_table("accounts_version")
