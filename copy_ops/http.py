"""HTTP adapter: Azure Functions requests in, responses out.

The only module that imports ``azure.functions``. Each handler parses the request,
calls the service, and maps the result, or a :class:`~copy_ops.errors.CopyOpsError`,
to a response. Errors are RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from functools import wraps
from importlib import resources
from typing import Any

import azure.functions as func

from copy_ops import runtime
from copy_ops.errors import CopyOpsError, FieldError, InvalidRequest, PayloadTooLarge
from copy_ops.model import Operation, State
from copy_ops.redaction import redact

logger = logging.getLogger(__name__)

# Far above any valid start request (8 KiB of metadata, a long SAS URL).
MAX_BODY_BYTES = 64 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
PROBLEM_TYPE = "urn:copy-ops:problem:"
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")), status_code=status, mimetype=JSON, headers=headers or {}
    )


def problem(error: CopyOpsError) -> func.HttpResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": redact(error.detail),
    }
    if error.code:
        body["code"] = error.code
    if error.errors:
        body["errors"] = [item.as_dict() for item in error.errors]
    if error.operation is not None:
        body["operation"] = error.operation
    headers = {"Retry-After": "5"} if error.status == 503 else {}
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")), status_code=error.status, mimetype=PROBLEM_JSON, headers=headers
    )


def handled(handler: Handler) -> Handler:
    """Every error becomes problem+json; an unexpected one a 500 with no detail."""

    @wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except CopyOpsError as error:
            if error.status >= 500:
                logger.warning("request_failed status=%s code=%s detail=%s", error.status, error.code, error.detail)
            return problem(error)
        except Exception:
            # The traceback can quote request data: redact it like everything else.
            logger.error("request_error %s", redact(traceback.format_exc()))
            return problem(CopyOpsError("an unexpected error occurred; it has been logged"))

    return wrapper


def _json_body(req: func.HttpRequest) -> Any:
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"body: must be at most {MAX_BODY_BYTES} bytes, not {len(raw)}",
            errors=(FieldError("body", f"must be at most {MAX_BODY_BYTES} bytes, not {len(raw)}"),),
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # RecursionError: thousands of nested brackets, valid JSON or not.
        raise InvalidRequest.of(FieldError("body", "must be a JSON object, valid and not nested too deeply")) from None


def _operation_response(status: int, op: Operation) -> func.HttpResponse:
    headers = {"Location": f"/api/copies/{op.id}"}
    if not op.is_final and op.next_check_at is not None:
        seconds = max(1, int((op.next_check_at - runtime.utc_now()).total_seconds()))
        headers["Retry-After"] = str(seconds)
    return json_response(status, runtime.service().view(op), headers)


@handled
def start_copy(req: func.HttpRequest) -> func.HttpResponse:
    body = _json_body(req)
    key = req.headers.get("Idempotency-Key")
    outcome = runtime.service().start(body, runtime.utc_now(), idempotency_key=key)
    if outcome.replayed:
        return _operation_response(200, outcome.operation)
    return _operation_response(201 if outcome.operation.is_final else 202, outcome.operation)


@handled
def get_copy(req: func.HttpRequest) -> func.HttpResponse:
    op = runtime.service().get(req.route_params.get("id", ""), runtime.utc_now())
    return _operation_response(200, op)


@handled
def abort_copy(req: func.HttpRequest) -> func.HttpResponse:
    op = runtime.service().abort(req.route_params.get("id", ""), runtime.utc_now())
    return _operation_response(200, op)


@handled
def list_copies(req: func.HttpRequest) -> func.HttpResponse:
    state, limit = _list_query(req.params)
    page = runtime.service().list(state, limit, req.params.get("continuation") or None)
    service = runtime.service()
    return json_response(200, {"items": [service.view(op) for op in page.items], "continuation": page.continuation})


def _list_query(params: dict[str, str]) -> tuple[State | None, int]:
    errors: list[FieldError] = []
    unknown = sorted(set(params) - {"state", "limit", "continuation", "code"})
    errors += [FieldError(name, "unknown query parameter") for name in unknown]
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
    return state, limit


@handled
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(openapi_document(), status_code=200, mimetype=JSON)


def openapi_document() -> str:
    return resources.files("copy_ops").joinpath("openapi.json").read_text(encoding="utf-8")
