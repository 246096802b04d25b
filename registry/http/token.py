"""The built-in token server (Docker token authentication) and its JWKS.

GET with Basic auth is what docker and podman send; POST with an OAuth2 form is what
containerd tries first. Lack of permission never fails a token request: the token carries
the intersection of what was asked and what the grants allow.
"""

from __future__ import annotations

import json
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.auth.access import locked_out, parse_basic
from registry.auth.accounts import ACCESS_TOKEN_CLAIM, BadCredentials, LockedOut
from registry.auth.grants import Access, Identity, grant_access, parse_scope
from registry.auth.tokens import InvalidToken
from registry.core.errors import RegistryError
from registry.http.common import read_body, services

INCORRECT = "incorrect username or password"
MAX_FORM_SIZE = 64 * 1024


def _refused(message: str = INCORRECT, oauth_error: str = "invalid_grant") -> Response:
    # docker prints `unauthorized: <details>` from the legacy "details" field; other
    # clients read the OCI errors or the OAuth2 error.
    body = {"details": message, "error": oauth_error, "error_description": message,
            "errors": [{"code": "UNAUTHORIZED", "message": message, "detail": {}}]}
    return JSONResponse(body, status_code=401)


def _bad_request(message: str, oauth_error: str = "invalid_request") -> Response:
    body = {"error": oauth_error, "error_description": message,
            "errors": [{"code": "UNSUPPORTED", "message": message, "detail": {}}]}
    return JSONResponse(body, status_code=400)


def _check_service(request: Request, service: str | None) -> str:
    configured = services(request).settings.auth.token.service
    if service and service != configured:
        raise RegistryError("DENIED", f"this token server issues tokens for service "
                                      f"{configured!r}, not {service!r}", status=400)
    return configured


def _issue(request: Request, identity: Identity, service: str, wanted: list[Access],
           refresh: bool) -> dict:
    svc = services(request)
    request.state.user = identity.user  # for the request journal
    granted = grant_access(identity, svc.accounts.rules(), wanted)
    # A fault rule can make us hand out tokens that expired an hour ago.
    expired = bool(request.scope.get("state", {}).get("expired_token"))
    claim = identity.token_claim()
    extra = {ACCESS_TOKEN_CLAIM: claim} if claim else None
    token, expires_in, issued_at = svc.issuer.issue(identity.user, service, granted, expired,
                                                    extra)
    body = {"token": token, "access_token": token, "expires_in": expires_in,
            "issued_at": _timestamp(issued_at),
            "scope": " ".join(str(a) for a in granted)}
    # No refresh token for an access-token sign-in: it would outlive the token's revocation.
    if refresh and not identity.anonymous and identity.access_token is None:
        body["refresh_token"] = svc.issuer.issue_refresh(identity.user, service)
    return body


def _authenticate(request: Request, user: str, password: str) -> Identity:
    address = request.client.host if request.client else ""
    return services(request).accounts.authenticate(user, password, address)


async def _form(request: Request) -> QueryParams:
    """The urlencoded POST body (parsed here: starlette's form parser needs an extra
    package for what is one line of standard library)."""
    body = await read_body(request, MAX_FORM_SIZE)
    return QueryParams(body.decode("latin-1"))


async def get_token(request: Request) -> Response:
    params = request.query_params
    service = _check_service(request, params.get("service"))
    wanted = [a for scope in params.getlist("scope") for a in parse_scope(scope)]
    identity = Identity()
    credentials = parse_basic(request.headers.get("authorization"))
    if credentials:
        try:
            identity = await run_in_threadpool(_authenticate, request, *credentials)
        except LockedOut as e:
            raise locked_out(e) from None
        except BadCredentials:
            return _refused()
    refresh = params.get("offline_token", "").lower() == "true"
    body = await run_in_threadpool(_issue, request, identity, service, wanted, refresh)
    return JSONResponse(body)


async def post_token(request: Request) -> Response:
    form = await _form(request)
    service = _check_service(request, form.get("service"))
    wanted = parse_scope(" ".join(str(v) for v in form.getlist("scope")))
    grant_type = form.get("grant_type")
    svc = services(request)
    if grant_type == "password":
        try:
            identity = await run_in_threadpool(
                _authenticate, request, str(form.get("username", "")),
                str(form.get("password", "")))
        except LockedOut as e:
            raise locked_out(e) from None
        except BadCredentials:
            return _refused()
        refresh = form.get("access_type") == "offline"
    elif grant_type == "refresh_token":
        try:
            subject = svc.verifier.verify_refresh(str(form.get("refresh_token", "")))
        except InvalidToken:
            return _refused("invalid or expired refresh token")
        identity = await run_in_threadpool(svc.accounts.identity_of, subject)  # never narrowed
        if identity is None:
            return _refused("invalid or expired refresh token")
        refresh = False
    else:
        return _bad_request(f"unsupported grant_type {grant_type!r}", "unsupported_grant_type")
    body = await run_in_threadpool(_issue, request, identity, service, wanted, refresh)
    if grant_type == "refresh_token":
        body["refresh_token"] = form.get("refresh_token")
    return JSONResponse(body)


async def jwks(request: Request) -> Response:
    return Response(json.dumps(services(request).issuer.jwks()),
                    media_type="application/json")


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
