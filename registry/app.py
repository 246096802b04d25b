"""Building the ASGI application from Settings: services, routes, middleware, error handlers."""

from __future__ import annotations

import os
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware

from registry.config import Settings
from registry.core.blobs import BlobStore
from registry.core.errors import RegistryError
from registry.core.manifest_store import ManifestStore
from registry.core.uploads import Uploads
from registry.db.engine import Database
from registry.db.queries import Metadata
from registry.http.errors import (
    http_exception_handler,
    registry_error_handler,
    unexpected_error_handler,
)
from registry.http.middleware import ApiVersionHeader
from registry.http.routes import ROUTES
from registry.storage import StorageDriver
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


def make_storage(settings: Settings) -> StorageDriver:
    return FilesystemDriver(settings.storage_root)


def make_services(settings: Settings) -> Services:
    database = Database(settings.effective_database_url)
    metadata = Metadata(database)
    storage = make_storage(settings)
    return Services(
        settings=settings,
        database=database,
        metadata=metadata,
        storage=storage,
        blobs=BlobStore(metadata, storage),
        uploads=Uploads(metadata, storage),
        manifests=ManifestStore(metadata),
    )


def create_app(settings: Settings) -> Starlette:
    services = make_services(settings)
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(ApiVersionHeader)],
        exception_handlers={
            RegistryError: registry_error_handler,
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
