"""Alembic migrations: the only way Tollgate's schema changes (installed as registry.migrations)."""
