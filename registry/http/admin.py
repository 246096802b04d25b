"""The admin API (JSON): users, grants and access tokens, for administrators, so tests and
scripts need no CLI. Authenticated with Basic or with a bearer token of an admin user."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.auth.access import locked_out, parse_basic, parse_bearer
from registry.auth.accounts import AccountError, BadCredentials, LockedOut
from registry.auth.passwords import PasswordRejected
from registry.auth.tokens import InvalidToken
from registry.core.errors import RegistryError
from registry.db.accounts import AlreadyExists
from registry.http.common import services


def _identity_is_admin(request: Request) -> bool:
    svc = services(request)
    authorization = request.headers.get("authorization")
    credentials = parse_basic(authorization)
    if credentials:
        address = request.client.host if request.client else ""
        return svc.accounts.authenticate(*credentials, address).may_administer
    token = parse_bearer(authorization)
    if token and svc.verifier is not None:
        identity = svc.accounts.identity_from_claims(svc.verifier.verify(token))
        return identity is not None and identity.may_administer
    raise BadCredentials("")


async def require_admin(request: Request) -> None:
    if services(request).settings.auth.mode == "none":
        return
    challenge = {"WWW-Authenticate": f'Basic realm="{services(request).settings.auth.realm}"'}
    try:
        admin = await run_in_threadpool(_identity_is_admin, request)
    except LockedOut as e:
        raise locked_out(e) from None
    except (BadCredentials, InvalidToken):
        raise RegistryError("UNAUTHORIZED", headers=challenge) from None
    if not admin:
        raise RegistryError("DENIED", "the admin API is for administrators")


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise RegistryError("UNSUPPORTED", "the body must be JSON", status=400) from None
    if not isinstance(body, dict):
        raise RegistryError("UNSUPPORTED", "the body must be a JSON object", status=400)
    return body


def _bad(error: Exception) -> RegistryError:
    status = 409 if isinstance(error, AlreadyExists) else 400
    message = f"already exists: {error}" if isinstance(error, AlreadyExists) else str(error)
    return RegistryError("UNSUPPORTED", message, status=status)


async def _call(function, *args, **kwargs):  # noqa: ANN001, ANN202
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except (AccountError, PasswordRejected, AlreadyExists) as e:
        raise _bad(e) from None


def _user_json(user) -> dict:  # noqa: ANN001
    return {"name": user.name, "admin": user.admin, "disabled": user.disabled}


async def list_users(request: Request) -> Response:
    await require_admin(request)
    users = await _call(services(request).accounts.list_users)
    return JSONResponse([_user_json(u) for u in users])


async def add_user(request: Request) -> Response:
    await require_admin(request)
    body = await _json(request)
    await _call(services(request).accounts.add_user, str(body.get("name", "")),
                str(body.get("password", "")), bool(body.get("admin", False)))
    return JSONResponse({"name": body["name"], "admin": bool(body.get("admin", False)),
                         "disabled": False}, status_code=201)


async def update_user(request: Request) -> Response:
    await require_admin(request)
    name = request.path_params["user"]
    body = await _json(request)
    accounts = services(request).accounts
    if "password" in body:
        await _call(accounts.set_password, name, str(body["password"]))
    flags = {k: bool(body[k]) for k in ("admin", "disabled") if k in body}
    if flags:
        await _call(accounts.update, name, **flags)
    if not flags and "password" not in body:
        raise RegistryError("UNSUPPORTED", "nothing to change: give password, admin or "
                                           "disabled", status=400)
    return Response(status_code=204)


async def remove_user(request: Request) -> Response:
    await require_admin(request)
    await _call(services(request).accounts.remove_user, request.path_params["user"])
    return Response(status_code=204)


def _actions_text(value: object) -> str:
    return ",".join(value) if isinstance(value, list) else str(value or "")


async def list_grants(request: Request) -> Response:
    await require_admin(request)
    grants = await _call(services(request).accounts.list_grants)
    return JSONResponse([{"subject": g.subject, "pattern": g.pattern, "actions": list(g.actions)}
                         for g in grants])


async def add_grant(request: Request) -> Response:
    await require_admin(request)
    body = await _json(request)
    grant = await _call(services(request).accounts.add_grant, str(body.get("subject", "")),
                        str(body.get("pattern", "")), _actions_text(body.get("actions")))
    return JSONResponse({"subject": grant.subject, "pattern": grant.pattern,
                         "actions": list(grant.actions)}, status_code=201)


async def remove_grant(request: Request) -> Response:
    await require_admin(request)
    params = request.query_params
    await _call(services(request).accounts.remove_grant, params.get("subject", ""),
                params.get("pattern", ""), params.get("actions") or None)
    return Response(status_code=204)


async def create_access_token(request: Request) -> Response:
    await require_admin(request)
    body = await _json(request)
    expires_at = None
    if body.get("expires_in") is not None:
        seconds = body["expires_in"]
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
            raise RegistryError("UNSUPPORTED", "expires_in must be a positive number of "
                                               "seconds", status=400)
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    secret = await _call(services(request).accounts.create_access_token,
                         request.path_params["user"], str(body.get("name", "")),
                         body.get("pattern"), _actions_text(body.get("actions")) or None,
                         expires_at)
    return JSONResponse({"user": request.path_params["user"], "name": body.get("name"),
                         "token": secret}, status_code=201)


async def revoke_access_token(request: Request) -> Response:
    await require_admin(request)
    await _call(services(request).accounts.revoke_access_token, request.path_params["user"],
                request.path_params["token"])
    return Response(status_code=204)
