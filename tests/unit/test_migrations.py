"""`tollgate migrate`, and `serve` refusing a database whose schema it does not know."""

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command

from registry.db import migrate
from tests.api.helpers import make_client, push_image, push_manifest
from tests.conftest import start_registry, stop_registry


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


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request, tmp_path):
    """(data dir, --database-url or None) of a database at revision 0002 holding a
    repository with two tags, as a Tollgate of that version left it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if request.param == "sqlite":
        url, option = f"sqlite:///{data_dir / 'tollgate.db'}", None
    else:
        url = option = request.getfixturevalue("postgres").create_database("old")
    engine = sa.create_engine(url)
    config = migrate._alembic_config()
    now = datetime.now(UTC)
    repositories = sa.table("repositories", sa.column("id"), sa.column("name"),
                            sa.column("created_at", sa.DateTime(timezone=True)))
    manifests = sa.table("manifests", *map(sa.column, (
        "id", "repository_id", "digest", "media_type", "size", "payload")),
        sa.column("created_at", sa.DateTime(timezone=True)))
    tags = sa.table("tags", sa.column("repository_id"), sa.column("name"),
                    sa.column("manifest_id"), sa.column("updated_at", sa.DateTime(timezone=True)))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
            # ids from the database: PostgreSQL's sequences must move on as in real use
            repository_id = connection.execute(repositories.insert().values(
                name="team/app", created_at=now).returning(repositories.c.id)).scalar_one()
            manifest_id = connection.execute(manifests.insert().values(
                repository_id=repository_id, digest="sha256:" + "0" * 64, size=2,
                media_type="application/vnd.oci.image.manifest.v1+json", payload=b"{}",
                created_at=now).returning(manifests.c.id)).scalar_one()
            connection.execute(tags.insert(), [
                {"repository_id": repository_id, "name": name, "manifest_id": manifest_id,
                 "updated_at": now} for name in ("v2", "v1")])
    finally:
        engine.dispose()
    return data_dir, option


def test_migrate_upgrades_a_database_with_data(old_database):
    data_dir, url = old_database
    options = ["--data-dir", str(data_dir), *(["--database-url", url] if url else [])]
    result = tollgate("migrate", *options)
    assert result.returncode == 0, result.stderr
    assert "database schema at revision 0004" in result.stdout

    server = start_registry(data_dir, database_url=url)
    try:
        with make_client(server.url) as client:
            def listed():
                resp = client.get("/v2/team/app/tags/list")
                assert resp.status_code == 200, resp.text
                return resp.json()["tags"]

            assert listed() == ["v1", "v2"]
            image = push_image(client, "team/app", "v3")
            assert listed() == ["v1", "v2", "v3"]
            assert client.delete("/v2/team/app/manifests/v1").status_code == 202
            assert listed() == ["v2", "v3"]
            push_manifest(client, "team/app", "v1", image.body, image.media_type)
            assert listed() == ["v1", "v2", "v3"]
    finally:
        stop_registry(server)
