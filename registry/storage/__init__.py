"""Byte storage behind one small driver interface: paths and bytes, no registry rules."""

from registry.storage.base import (
    PathNotFound,
    StorageDriver,
    StorageUnavailable,
    StorageWriter,
)

__all__ = ["PathNotFound", "StorageDriver", "StorageUnavailable", "StorageWriter"]
