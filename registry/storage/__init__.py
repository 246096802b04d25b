"""Byte storage behind one small driver interface: paths and bytes, no registry rules."""

from registry.storage.base import PathNotFound, StorageDriver, StorageWriter

__all__ = ["PathNotFound", "StorageDriver", "StorageWriter"]
