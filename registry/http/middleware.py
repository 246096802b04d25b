"""ASGI middleware: the API version header every registry response carries, and the URL a
client used in front of a trusted proxy (X-Forwarded-Proto/-Host)."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSION_HEADER = (b"docker-distribution-api-version", b"registry/2.0")


class ApiVersionHeader:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), API_VERSION_HEADER]
            await send(message)

        await self.app(scope, receive, send_with_header)


# a host name, IPv4 or [IPv6] address, with an optional port: nothing that could break out of
# the quoted realm of a WWW-Authenticate header
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")


def _first(value: bytes) -> str:
    """The first entry of a header a chain of proxies appends to (`a, b`): the client's."""
    return value.decode("latin-1").split(",", 1)[0].strip()


class ForwardedHeaders:
    """With http.trust_forwarded: the scheme and host the client used, from the proxy's
    X-Forwarded-Proto and X-Forwarded-Host, become the request's own, so that URLs built from
    the request (the token realm) point at the proxy. uvicorn does X-Forwarded-For (and
    -Proto too); X-Forwarded-Host is not its business. Values that are not a scheme or a host
    are ignored."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        proto = host = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto" and proto is None:
                proto = _first(value).lower()
            elif name == b"x-forwarded-host" and host is None:
                host = _first(value)
        if proto in ("http", "https"):
            scope["scheme"] = proto
        if host and _HOST.fullmatch(host):
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"host"]
            scope["headers"].append((b"host", host.encode("latin-1")))
        await self.app(scope, receive, send)
