"""Admin API of the test-fixture features: fault rules, the request journal, rate limits."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.core.errors import RegistryError
from registry.fixture.faults import FaultRule, FaultRuleError
from registry.fixture.journal import FILTER_KEYS
from registry.http.admin import require_admin
from registry.http.common import services


def _faults(request: Request):  # noqa: ANN202
    faults = services(request).faults
    if faults is None:
        raise RegistryError("UNSUPPORTED", "fault injection is off: set faults.enabled "
                                           "(TOLLGATE_FAULTS_ENABLED=true)", status=404)
    return faults


async def list_faults(request: Request) -> Response:
    await require_admin(request)
    return JSONResponse([rule.to_dict() for rule in _faults(request).list()])


async def add_fault(request: Request) -> Response:
    await require_admin(request)
    faults = _faults(request)
    try:
        rule = FaultRule.from_dict(json.loads(await request.body() or b"{}"))
    except (ValueError, TypeError) as e:
        message = str(e) if isinstance(e, FaultRuleError) else f"invalid rule: {e}"
        raise RegistryError("UNSUPPORTED", message, status=400) from None
    return JSONResponse(faults.add(rule).to_dict(), status_code=201)


async def remove_fault(request: Request) -> Response:
    await require_admin(request)
    rule_id = request.path_params["id"]
    if not rule_id.isdigit() or not _faults(request).remove(int(rule_id)):
        raise RegistryError("UNSUPPORTED", f"no fault rule {rule_id}", status=404)
    return Response(status_code=204)


async def clear_faults(request: Request) -> Response:
    await require_admin(request)
    _faults(request).clear()
    return Response(status_code=204)


def _journal(request: Request):  # noqa: ANN202
    journal = services(request).journal
    if journal is None:
        raise RegistryError("UNSUPPORTED", "the request journal is off: set journal.enabled "
                                           "(TOLLGATE_JOURNAL_ENABLED=true)", status=404)
    return journal


async def query_journal(request: Request) -> Response:
    await require_admin(request)
    filters = {k: v for k, v in request.query_params.items() if k in FILTER_KEYS}
    unknown = set(request.query_params) - set(FILTER_KEYS)
    if unknown:
        raise RegistryError("UNSUPPORTED", f"unknown journal filter {sorted(unknown)[0]!r}; "
                                           f"filters are {', '.join(FILTER_KEYS)}", status=400)
    return JSONResponse(_journal(request).query(**filters))


async def clear_journal(request: Request) -> Response:
    await require_admin(request)
    _journal(request).clear()
    if services(request).ratelimit is not None:
        services(request).ratelimit.clear()
    return Response(status_code=204)
