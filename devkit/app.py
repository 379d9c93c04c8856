"""Loading ``function_app`` as the Functions host would: with its app settings in the
environment, settings and service rebuilt from them."""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import azure.functions as func

from copy_ops.edges import runtime
from devkit.azurite import PROJECT_ROOT
from devkit.inputs import http_request
from devkit.worker import run, shared_worker

ROOT = PROJECT_ROOT


def sample_settings() -> dict[str, str]:
    values: dict[str, str] = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return values


def load_function_app() -> ModuleType:
    run(runtime.reset())
    module = importlib.import_module("function_app")
    return importlib.reload(module)


def functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The user functions the app registers, by name, callable from synchronous code: each
    call is invoked as the worker invokes it (:mod:`devkit.worker`), and waited for."""
    worker = shared_worker()
    return {
        fn.get_function_name(): functools.partial(worker.call, fn.get_user_function())
        for fn in module.app.get_functions()
    }


def request(
    method: str,
    route: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
) -> func.HttpRequest:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return http_request(
        method,
        f"http://localhost:7071/api/{route}",
        {"Content-Type": "application/json", **(headers or {})},
        params or {},
        route_params or {},
        data,
    )


def payload(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())
