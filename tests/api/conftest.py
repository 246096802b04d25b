"""API-suite fixtures: every response any test sees is checked for the API version header."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .helpers import make_client


@pytest.fixture
def client(registry) -> Iterator[httpx.Client]:
    with make_client(registry.url) as c:
        yield c


@pytest.fixture
def client_for() -> Iterator:
    """`client_for(server)`: a checked client for an extra registry_factory server."""
    opened: list[httpx.Client] = []

    def make(server, timeout: float = 30) -> httpx.Client:
        c = make_client(server.url, timeout)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()
