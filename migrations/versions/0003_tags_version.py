"""Repositories get a tags version, changed with every change to their tags, which tag-list
caches check.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows get 0: no process holds a tag list yet (servers of the previous version
    # keep none, and this version's refuse to start before the upgrade). Servers of the
    # previous version must not go on writing after it, though: they would not move the
    # version on, and this version's would keep serving the lists they read before.
    op.add_column("repositories", sa.Column("tags_version", sa.BigInteger, nullable=False,
                                            server_default="0"))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild would drop and re-create the table,
    # which with foreign keys on deletes every tag, manifest and blob link through CASCADE.
    op.drop_column("repositories", "tags_version")
