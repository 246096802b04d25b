"""Tollgate: a private OCI container-image registry and test fixture for image pullers."""

__version__ = "0.1.0"
