"""HTTP adapter: Azure Functions requests in, responses out.

Each handler, given its caller once it is known (:mod:`copy_ops.edges.http_callers`), parses its
request into typed input (:class:`~copy_ops.copies.model.CopyRequest`, the idempotency key,
:class:`~copy_ops.copies.model.ListQuery`), calls the service, and turns the domain result,
or a :class:`~copy_ops.core.errors.CopyOpsError`, into a response: JSON views
(:mod:`copy_ops.copies.views`) or RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from importlib import resources
from typing import Any

import azure.functions as func

from copy_ops.copies.model import ListQuery, Operation, State
from copy_ops.copies.permits import permit_copy
from copy_ops.copies.request import parse_copy_request
from copy_ops.copies.views import operation_view
from copy_ops.core.callers import Caller
from copy_ops.core.errors import (
    ConditionNotMet,
    ConfigurationError,
    Conflict,
    CopyOpsError,
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    StorageFault,
    StorageUnavailable,
    Unauthenticated,
)
from copy_ops.core.redaction import redact
from copy_ops.edges import runtime
from copy_ops.edges.http_callers import caller_view, known_caller

logger = logging.getLogger(__name__)

# Far above any valid start request (8 KiB of metadata, a long SAS URL).
MAX_BODY_BYTES = 64 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
IDEMPOTENCY_KEY_MAX = 200
PROBLEM_TYPE = "urn:copy-ops:problem:"
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"

# A handler takes the request and its caller; the function the host calls, the request alone.
Handler = Callable[[func.HttpRequest, Caller], Awaitable[func.HttpResponse]]
Endpoint = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


# -- input ---------------------------------------------------------------------


def json_body(req: func.HttpRequest, limit: int = MAX_BODY_BYTES) -> Any:
    raw = req.get_body() or b""
    if len(raw) > limit:
        raise PayloadTooLarge.of(FieldError("body", f"must be at most {limit} bytes, not {len(raw)}"))
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # RecursionError: thousands of nested brackets, valid JSON or not.
        raise InvalidRequest.of(FieldError("body", "must be a JSON object, valid and not nested too deeply")) from None


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise InvalidRequest.of(
            FieldError("Idempotency-Key", f"must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters")
        )
    return key


def list_query(params: Mapping[str, str], states: bool = True) -> ListQuery:
    """``state`` (when ``states``), ``limit`` and ``continuation``, checked."""
    known = {"state", "limit", "continuation", "code"} if states else {"limit", "continuation", "code"}
    errors = [FieldError(name, "unknown query parameter") for name in sorted(set(params) - known)]
    state: State | None = None
    if "state" in params:
        try:
            state = State(params["state"])
        except ValueError:
            errors.append(FieldError("state", "must be one of pending, succeeded, failed, aborted"))
    limit = DEFAULT_PAGE_SIZE
    if "limit" in params:
        text = params["limit"]
        # isdigit() alone admits "²" and other non-ASCII digits that int() rejects or reads.
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE_SIZE:
            errors.append(FieldError("limit", f"must be a whole number from 1 to {MAX_PAGE_SIZE}"))
        else:
            limit = int(text)
    if errors:
        raise InvalidRequest.of(*errors)
    return ListQuery(state, limit, params.get("continuation") or None)


# -- output --------------------------------------------------------------------


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")), status_code=status, mimetype=JSON, headers=headers or {}
    )


def view(op: Operation) -> dict[str, Any]:
    return operation_view(op, runtime.built().public_url(op.destination))


# Every error, by what it means, to its HTTP status and problem type: the one table (the
# most specific class that is in it wins; docs/api.md, "Errors", says the same). A fault
# of storage that the caller did not cause is never a 4xx: storage's refusals of the app's
# own requests are StorageFault (502), a race lost inside the app is Busy (503).
STATUSES: dict[type[CopyOpsError], tuple[int, str]] = {
    PayloadTooLarge: (413, "payload-too-large"),
    InvalidRequest: (400, "invalid-request"),
    Unauthenticated: (401, "unauthenticated"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not-found"),
    Conflict: (409, "conflict"),
    ConditionNotMet: (412, "precondition-failed"),
    PreconditionFailed: (503, "busy"),
    StorageFault: (502, "storage-error"),
    StorageUnavailable: (503, "storage-unavailable"),
    ConfigurationError: (503, "configuration-error"),
    CopyOpsError: (500, "internal-error"),
}


def status_of(error: CopyOpsError) -> tuple[int, str]:
    """The HTTP status and problem type of ``error``: its class's, or its nearest ancestor's."""
    return next(STATUSES[kind] for kind in type(error).__mro__ if kind in STATUSES)


def problem(error: CopyOpsError) -> func.HttpResponse:
    status, slug = status_of(error)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug,
        "title": error.title,
        "status": status,
        "detail": redact(error.detail),
    }
    if error.code:
        body["code"] = error.code
    if error.errors:
        body["errors"] = [item.as_dict() for item in error.errors]
    if isinstance(error.operation, Operation):
        body["operation"] = view(error.operation)
    headers = {"Retry-After": "5"} if status == 503 else {}
    if status == 401:
        # A 401 says how to authenticate (RFC 9110, 11.6.1): a bearer token of Microsoft Entra ID.
        headers["WWW-Authenticate"] = "Bearer"
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")), status_code=status, mimetype=PROBLEM_JSON, headers=headers
    )


def handled(handler: Handler) -> Endpoint:
    """Every request's caller is known first, as COPY_AUTH says (none: 401), and handed to
    its handler; every error becomes problem+json; an unexpected one a 500 with no detail."""

    @wraps(handler)
    async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return await handler(req, known_caller(req))
        except ConfigurationError as error:
            logger.error("configuration_error setting=%s detail=%s", error.code, error.detail)
            return problem(error)
        except CopyOpsError as error:
            status, _ = status_of(error)
            if status >= 500:
                logger.warning(
                    "request_failed status=%s error=%s code=%s detail=%s", status, error.kind, error.code, error.detail
                )
            return problem(error)
        except Exception:
            # The traceback can quote request data: redact it like everything else.
            logger.error("request_error %s", redact(traceback.format_exc()))
            return problem(CopyOpsError("an unexpected error occurred; it has been logged"))

    return wrapper


def _operation_response(status: int, op: Operation) -> func.HttpResponse:
    headers = {"Location": f"/api/copies/{op.id}"}
    if not op.is_final and op.next_check_at is not None:
        seconds = max(1, int((op.next_check_at - runtime.utc_now()).total_seconds()))
        headers["Retry-After"] = str(seconds)
    return json_response(status, view(op), headers)


# -- handlers ------------------------------------------------------------------


@handled
async def start_copy(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    now = runtime.utc_now()
    request = parse_copy_request(json_body(req), runtime.settings(), now)
    permit_copy(request, caller, runtime.settings())
    outcome = await (await runtime.service()).start(request, now, idempotency_key(req.headers), caller=caller)
    if outcome.replayed:
        return _operation_response(200, outcome.operation)
    return _operation_response(201 if outcome.operation.is_final else 202, outcome.operation)


@handled
async def get_copy(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    op = await (await runtime.service()).get(req.route_params.get("id", ""), runtime.utc_now(), caller=caller)
    return _operation_response(200, op)


@handled
async def abort_copy(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    op = await (await runtime.service()).abort(req.route_params.get("id", ""), runtime.utc_now(), caller=caller)
    return _operation_response(200, op)


@handled
async def list_copies(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    page = await (await runtime.service()).list(list_query(req.params), caller=caller)
    return json_response(200, {"items": [view(op) for op in page.items], "continuation": page.continuation})


@handled
async def whoami(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    return json_response(200, caller_view(caller))


@handled
async def openapi(req: func.HttpRequest, caller: Caller) -> func.HttpResponse:
    return func.HttpResponse(openapi_document(), status_code=200, mimetype=JSON)


def openapi_document() -> str:
    return resources.files("copy_ops").joinpath("openapi.json").read_text(encoding="utf-8")
