"""HTTP adapter of the callers: who calls, as ``COPY_AUTH`` says to know them
(:mod:`copy_ops.core.callers`), who the app takes them for (``GET /api/whoami``), and the
HTTP functions' auth level, which the Functions host reads when it indexes the app."""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from copy_ops.core.callers import Caller, caller_of
from copy_ops.core.errors import Unauthenticated
from copy_ops.edges import runtime

logger = logging.getLogger(__name__)


def auth_level() -> func.AuthLevel:
    """The HTTP functions' auth level. ``keys`` and ``both``: FUNCTION, so the host takes a
    request only with a function key (the app cannot check one itself: it never sees the
    keys, nor whether the host found one). ``entra``: ANONYMOUS, so a signed-in caller needs
    no key: App Service Authentication lets only signed-in callers through, and the app
    refuses a request with no principal whatever key it carries. Read once, when the host
    indexes the app: the one line that says which mode the app runs in (``auth_mode``)."""
    mode = runtime.auth_mode()
    level = func.AuthLevel.ANONYMOUS if mode == "entra" else func.AuthLevel.FUNCTION
    logger.info("auth_mode mode=%s auth_level=%s", mode, level.value)
    return level


def known_caller(req: func.HttpRequest) -> Caller:
    """The request's caller; :class:`~copy_ops.core.errors.Unauthenticated` (401) when
    ``COPY_AUTH`` asks for a principal and the request has none the platform sends."""
    mode = runtime.settings().auth
    try:
        return caller_of(mode, req.headers)
    except Unauthenticated as refusal:
        logger.info("request_unauthenticated mode=%s code=%s", mode, refusal.code)
        raise


def caller_view(caller: Caller) -> dict[str, Any]:
    """``GET /api/whoami``'s answer: who the app takes the caller for, and how it knows."""
    return {
        "known_by": caller.known_by.value,
        "object_id": caller.object_id,
        "tenant_id": caller.tenant_id,
        "name": caller.name,
        "roles": sorted(caller.roles),
        "groups": sorted(caller.groups),
        "admin": caller.admin,
        "auth": runtime.settings().auth,
    }
