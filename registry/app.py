"""Building the ASGI application from Settings: services, routes, middleware, error handlers."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from registry.auth.access import AccessController
from registry.auth.accounts import Accounts
from registry.auth.keys import SigningKey, load_or_create, load_trusted_keys
from registry.auth.tokens import TokenIssuer, TokenVerifier
from registry.config import Settings
from registry.core.blobs import BlobStore
from registry.core.errors import RegistryError
from registry.core.manifest_store import ManifestStore
from registry.core.tag_lists import TagLists
from registry.core.uploads import Uploads
from registry.db.accounts import AccountStore
from registry.db.engine import Database
from registry.db.queries import Metadata
from registry.fixture.faults import FaultRule, FaultSet
from registry.fixture.journal import Journal
from registry.fixture.middleware import FixtureMiddleware
from registry.fixture.ratelimit import PullRateLimit
from registry.http.errors import (
    http_exception_handler,
    registry_error_handler,
    unexpected_error_handler,
)
from registry.http.middleware import ApiVersionHeader, ForwardedHeaders
from registry.http.routes import ADMIN_ROUTES, ROUTES, TOKEN_ROUTES
from registry.storage import StorageDriver, StorageUnavailable
from registry.storage.filesystem import FilesystemDriver

SETTINGS_ENV = "TOLLGATE_RESOLVED_SETTINGS"


@dataclass
class Services:
    """The domain objects one process serves requests with; all state is in db and storage."""

    settings: Settings
    database: Database
    metadata: Metadata
    storage: StorageDriver
    blobs: BlobStore
    uploads: Uploads
    manifests: ManifestStore
    tag_lists: TagLists
    accounts: Accounts
    access: AccessController
    issuer: TokenIssuer | None
    verifier: TokenVerifier | None
    faults: FaultSet | None
    journal: Journal | None
    ratelimit: PullRateLimit | None


def make_storage(settings: Settings) -> StorageDriver:
    if settings.storage.driver == "s3":
        from registry.storage.s3 import S3Driver

        s3 = settings.storage.s3
        return S3Driver(
            s3.bucket or "", s3.prefix, region=s3.region, endpoint_url=s3.endpoint_url,
            addressing_style=s3.addressing_style, access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key, part_size=s3.part_size,
            redirect=s3.redirect, redirect_expires_in=s3.redirect_expires_in,
            public_endpoint_url=s3.public_endpoint_url)
    return FilesystemDriver(settings.storage_root,
                            direct_io=settings.storage.filesystem.direct_io)


async def storage_unavailable_handler(request: Request, exc: Exception) -> Response:
    """The store failed even after the driver's retries: 503, and the client may retry."""
    return await registry_error_handler(request, RegistryError("UNAVAILABLE", str(exc)))


def load_or_create_shared(key_file: Path, cert_file: Path, algorithm: str,
                          common_name: str) -> SigningKey:
    """`load_or_create` made safe for replicas sharing the data dir that start at once: the
    key pair is made under an exclusive lock beside the key file. Unlocked, a process could
    read the certificate before its maker wrote it, or pair its own certificate with the
    other's key, a mismatch that then stops every later start."""
    if key_file.exists() and cert_file.exists():
        return load_or_create(key_file, cert_file, algorithm, common_name)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    with open(key_file.with_name(f".{key_file.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        return load_or_create(key_file, cert_file, algorithm, common_name)


def make_tokens(settings: Settings) -> tuple[TokenIssuer | None, TokenVerifier | None]:
    """The token issuer and verifier of token mode: our own key (made on first start) plus
    any external issuer's keys we are told to trust."""
    if settings.auth.mode != "token":
        return None, None
    token = settings.auth.token
    key = load_or_create_shared(settings.data_path(token.key_file, "token-signing-key.pem"),
                                settings.data_path(token.cert_file, "token-signing-cert.pem"),
                                token.algorithm, token.issuer)
    issuer = TokenIssuer(key, token.issuer, token.expires_in, token.refresh_expires_in)
    trusted = load_trusted_keys(token.trusted_certs, token.trusted_jwks)
    verifier = TokenVerifier([(key.kid, key.public_key), *trusted], token.issuer,
                             token.service)
    return issuer, verifier


def make_services(settings: Settings) -> Services:
    database = Database(settings.effective_database_url)
    metadata = Metadata(database)
    storage = make_storage(settings)
    accounts = Accounts(AccountStore(database), settings.auth.lockout)
    issuer, verifier = make_tokens(settings)
    return Services(
        settings=settings,
        database=database,
        metadata=metadata,
        storage=storage,
        blobs=BlobStore(metadata, storage),
        uploads=Uploads(metadata, storage),
        manifests=ManifestStore(metadata),
        tag_lists=TagLists(metadata),
        accounts=accounts,
        access=AccessController(settings.auth, accounts, verifier),
        issuer=issuer,
        verifier=verifier,
        faults=FaultSet([FaultRule.from_dict(r) for r in settings.faults.rules])
        if settings.faults.enabled or settings.faults.rules else None,
        journal=Journal(settings.journal.size, settings.journal.file)
        if settings.journal.enabled else None,
        ratelimit=PullRateLimit(settings.ratelimit.pulls, settings.ratelimit.window)
        if settings.ratelimit.pulls else None,
    )


def create_app(settings: Settings) -> Starlette:
    services = make_services(settings)
    routes = ROUTES + ADMIN_ROUTES + (TOKEN_ROUTES if services.issuer else [])
    middleware = [Middleware(ApiVersionHeader)]
    if settings.http.trust_forwarded:  # first: the fixture's injected 401s see it too
        middleware.insert(0, Middleware(ForwardedHeaders))
    if services.faults is not None or services.journal is not None or services.ratelimit:
        middleware.append(Middleware(
            FixtureMiddleware, faults=services.faults, journal=services.journal,
            ratelimit=services.ratelimit, ratelimit_by=settings.ratelimit.by,
            auth=settings.auth))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            RegistryError: registry_error_handler,
            StorageUnavailable: storage_unavailable_handler,
            404: http_exception_handler,
            405: http_exception_handler,
            Exception: unexpected_error_handler,
        },
    )
    app.router.redirect_slashes = False
    app.state.services = services
    return app


def app_from_environment() -> Starlette:
    """uvicorn's factory for worker processes: settings come resolved from `tollgate serve`."""
    return create_app(Settings.from_json(os.environ[SETTINGS_ENV]))
