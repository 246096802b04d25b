"""`tollgate migrate`, and `serve` refusing a database whose schema it does not know."""

import sqlite3
import subprocess
import sys


def tollgate(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_migrate_creates_the_schema(tmp_path):
    result = tollgate("migrate", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "database schema at revision" in result.stdout
    with sqlite3.connect(tmp_path / "tollgate.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master")}
    assert {"repositories", "blobs", "manifests", "tags", "uploads"} <= tables
    assert tollgate("migrate", "--data-dir", str(tmp_path)).returncode == 0  # idempotent


def test_serve_refuses_a_database_from_another_version(tmp_path):
    assert tollgate("migrate", "--data-dir", str(tmp_path)).returncode == 0
    with sqlite3.connect(tmp_path / "tollgate.db") as db:
        db.execute("update alembic_version set version_num = 'ffff'")
    result = tollgate("serve", "--data-dir", str(tmp_path), "--port", "1")
    assert result.returncode == 1
    assert "revision ffff" in result.stderr and "upgrade Tollgate" in result.stderr


def test_serve_refuses_a_foreign_database(tmp_path):
    with sqlite3.connect(tmp_path / "tollgate.db") as db:
        db.execute("create table something_else (id integer)")
    result = tollgate("serve", "--data-dir", str(tmp_path), "--port", "1")
    assert result.returncode == 1
    assert "no Tollgate schema version" in result.stderr
