"""The metadata layer on SQLite and on PostgreSQL: the same migrations build the schema the
models describe, names sort bytewise, and the insert-or-ignore/upsert paths stay correct when
several transactions (threads here, replicas in production) hit the same rows at once."""

from __future__ import annotations

import hashlib
import multiprocessing

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from registry.db import migrate
from registry.db.accounts import AccountStore
from registry.db.engine import Database
from registry.db.models import Base
from registry.db.queries import ManifestRecord, Metadata, NewManifest
from tests.concurrently import n_together

THREADS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tollgate.db'}"
    return request.getfixturevalue("postgres").create_database("unit")


@pytest.fixture
def database(database_url):
    db = Database(database_url)
    migrate.ensure_schema(db.engine)
    yield db
    db.dispose()


# ------------------------------------------------------------------------------ migrations


def test_migrations_build_the_schema_of_the_models(database_url):
    engine = create_engine(database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == [], diff
    finally:
        engine.dispose()


def test_each_migration_goes_up_and_down(database_url):
    engine = create_engine(database_url)
    config = migrate._alembic_config()

    def run(action, target):
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            action(config, target)
        return set(inspect(engine).get_table_names()) - {"alembic_version"}

    initial = {"repositories", "blobs", "repository_blobs", "manifests", "manifest_references",
               "tags", "uploads"}
    everything = set(Base.metadata.tables)
    try:
        assert run(command.upgrade, "0001") == initial
        assert run(command.upgrade, "head") == everything
        assert run(command.downgrade, "0001") == initial
        assert run(command.downgrade, "base") == set()
        assert run(command.upgrade, "head") == everything
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_sorting_columns_use_the_c_collation_on_postgresql(postgres):
    engine = create_engine(postgres.create_database("collation"))
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND collation_name = 'C'")).all()
        assert sorted(map(tuple, rows)) == [("repositories", "name"), ("tags", "name")]
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ ordering

# Bytewise: '-' < '.' < digits < upper case < '_' < lower case; a linguistic collation (the
# test PostgreSQL's default is ICU en-US) orders these differently.
NAMES = ["B", "a", "a-b", "a.b", "a_b", "aB", "ab", "a1", "_x", "Z9"]


def test_tags_and_repositories_list_in_byte_order(database):
    metadata = Metadata(database)
    record = ManifestRecord("sha256:" + "0" * 64, "application/vnd.oci.image.manifest.v1+json",
                            b"{}")
    metadata.put_manifest("sorting", NewManifest(record, [], [], None), NAMES)
    assert metadata.list_tags("sorting", None, None) == sorted(NAMES)
    assert metadata.list_tags("sorting", "a-b", 3) == sorted(NAMES)[sorted(NAMES).index("a-b")
                                                                     + 1:][:3]
    repositories = [f"r/{name.lower()}-{i}" for i, name in enumerate(NAMES)]
    for name in repositories:
        metadata.link_blob(name, "sha256:" + "1" * 64, 1)
    assert metadata.list_repositories(None, None) == sorted([*repositories, "sorting"])


# ------------------------------------------------------------------------------ concurrency


def manifest(n: int) -> NewManifest:
    payload = b'{"n": %d}' % n
    record = ManifestRecord("sha256:" + hashlib.sha256(payload).hexdigest(),
                            "application/vnd.oci.image.manifest.v1+json", payload)
    return NewManifest(record, [], [], None)


def test_same_blob_linked_at_once(database):
    metadata = Metadata(database)
    dgst = "sha256:" + "2" * 64
    n_together(THREADS, lambda i: metadata.link_blob(f"link/r{i % 2}", dgst, 10))
    assert metadata.repositories_with_blob(dgst) == ["link/r0", "link/r1"]


def test_same_manifest_and_tags_put_at_once(database):
    metadata = Metadata(database)
    same = manifest(0)
    n_together(THREADS, lambda i: metadata.put_manifest("same", same, ["x", "y"]))
    assert metadata.list_tags("same", None, None) == ["x", "y"]
    assert metadata.manifest_by_tag("same", "y") == same.record


def test_overlapping_tag_sets_in_opposite_orders_do_not_deadlock(database):
    metadata = Metadata(database)
    tags = [f"t{i}" for i in range(6)]
    for round_ in range(3):
        manifests = [manifest(round_ * THREADS + i) for i in range(THREADS)]
        n_together(THREADS, lambda i, ms=manifests: metadata.put_manifest(
            "overlap", ms[i], tags if i % 2 else tags[::-1]))
        winners = {metadata.manifest_by_tag("overlap", tag).digest for tag in tags}
        assert winners <= {m.record.digest for m in manifests}


def test_manifest_deleted_while_pushed_again_leaves_a_consistent_state(database):
    metadata = Metadata(database)
    for round_ in range(5):
        m = manifest(1000 + round_)
        metadata.put_manifest("churn", m, ["t"])

        def act(i, m=m):
            if i % 2:
                metadata.delete_manifest("churn", m.record.digest)
            else:
                metadata.put_manifest("churn", m, ["t"])

        n_together(THREADS, act)
        tagged = metadata.manifest_by_tag("churn", "t")
        stored = metadata.manifest_by_digest("churn", m.record.digest)
        assert tagged is None or tagged == stored  # never a tag without its manifest


def test_failed_sign_ins_at_once_are_each_counted(database):
    store = AccountStore(database)
    results = n_together(THREADS, lambda i: store.record_failure("mallory", "10.0.0.1", THREADS,
                                                               300, 60))
    locks = [r for r in results if r is not None]
    assert len(locks) == 1, "exactly the last of the failures starts the lock-out"
    assert store.locked_until("mallory", "10.0.0.1") == locks[0]


def test_same_grant_set_at_once(database):
    store = AccountStore(database)
    n_together(THREADS, lambda i: store.set_grant("ci", "team/**", {"pull", "push"}))
    assert [(g.subject, g.pattern, g.actions) for g in store.list_grants()] == [
        ("ci", "team/**", ("pull", "push"))]


def _ensure_schema_in_process(url, barrier, results):
    engine = create_engine(url)
    barrier.wait(timeout=30)
    try:
        migrate.ensure_schema(engine)
        results.put("ok")
    except Exception as e:  # noqa: BLE001 - reported to the test
        results.put(f"{type(e).__name__}: {e}")
    finally:
        engine.dispose()


def test_schema_created_by_several_servers_starting_at_once(database_url):
    """Servers are processes (alembic's context is global to one), released together."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_ensure_schema_in_process,
                                 args=(database_url, barrier, results)) for _ in range(4)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    assert outcomes == ["ok"] * 4
    engine = create_engine(database_url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
