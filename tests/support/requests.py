"""Start-request bodies for tests, naming blobs of the test's own containers, a start
from such a body through the same parsing as the HTTP adapter's, and the check of a
problem+json answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.functions as func

from copy_ops.app_service import AppService, StartOutcome
from copy_ops.copies.request import parse_copy_request
from copy_ops.edges import http
from devkit.app import payload
from devkit.worker import run


def copy_body(src: str, dst: str, name: str = "a.bin", dest_name: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "source": {"container": src, "blob": name},
        "destination": {"container": dst, "blob": dest_name or name},
        **fields,
    }


def start(service: AppService, body: Any, now: datetime, idempotency_key: str | None = None) -> StartOutcome:
    """Parse ``body`` and the key as the HTTP adapter does, then start: the service's
    own methods take typed input only."""
    request = parse_copy_request(body, service.settings, now)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    return run(service.start(request, now, http.idempotency_key(headers)))


def is_problem(response: func.HttpResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = payload(response)
    assert body["status"] == status and body["title"] and body["type"].startswith("urn:copy-ops:problem:")
    return body
