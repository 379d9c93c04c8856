"""The HTTP edge under each COPY_AUTH: who the app takes the caller for (GET /api/whoami),
a 401 problem+json for a request without the caller the mode asks for (whatever key it
carries), the functions' auth level as the host indexes them, and the mode said at start."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from copy_ops.edges import runtime
from devkit import DEV_ACCOUNT, DEV_KEY
from devkit.app import functions, load_function_app, payload, request
from devkit.worker import run
from tests.support.requests import is_problem

OID = "5b5450db-eb26-4c1a-981c-ba1d25f0483d"
# Storage no test here may reach: a request that got that far fails, and says so.
NOWHERE = (
    f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
    f"BlobEndpoint=http://127.0.0.1:1/{DEV_ACCOUNT};QueueEndpoint=http://127.0.0.1:1/{DEV_ACCOUNT}"
)
Load = Callable[..., ModuleType]


def principal(*roles: str) -> dict[str, str]:
    claims = [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": OID}]
    claims += [{"typ": "name", "val": "Alice"}, *({"typ": "roles", "val": role} for role in roles)]
    encoded = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()
    return {"X-MS-CLIENT-PRINCIPAL": encoded, "X-MS-CLIENT-PRINCIPAL-IDP": "aad", "X-MS-CLIENT-PRINCIPAL-ID": OID}


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Iterator[Load]:
    """The app's functions, loaded as the host loads them under ``COPY_AUTH`` = ``mode``
    (``platform``: App Service Authentication is on in front, WEBSITE_AUTH_ENABLED)."""

    def load_in(mode: str, platform: bool = True) -> ModuleType:
        monkeypatch.setenv("COPY_STORAGE", NOWHERE)
        monkeypatch.setenv("COPY_AUTH", mode)
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True" if platform else "")
        return load_function_app()

    yield load_in
    run(runtime.reset())


def whoami(load: Load, mode: str, headers: dict[str, str]) -> Any:
    return functions(load(mode))["whoami"](request("GET", "whoami", headers=headers))


def auth_levels(module: ModuleType) -> set[str]:
    """The auth level of each HTTP function, as the host reads the app's index."""
    triggers = [fn.get_trigger().get_dict_repr() for fn in module.app.get_functions()]
    return {str(getattr(t["authLevel"], "value", t["authLevel"])) for t in triggers if t["type"] == "httpTrigger"}


def test_keys_takes_the_keys_holder_whatever_principal_comes(load: Load) -> None:
    response = whoami(load, "keys", principal())
    assert response.status_code == 200
    assert payload(response) == {
        "known_by": "key",
        "object_id": None,
        "tenant_id": None,
        "name": None,
        "roles": [],
        "groups": [],
        "admin": True,
        "auth": "keys",
    }


@pytest.mark.parametrize("mode", ["entra", "both"])
def test_a_principal_is_the_caller(load: Load, mode: str) -> None:
    view = payload(whoami(load, mode, principal("Copies.Read", "Copies.Start")))
    assert view["known_by"] == "entra" and view["object_id"] == OID and view["name"] == "Alice"
    assert view["roles"] == ["Copies.Read", "Copies.Start"] and view["admin"] is False and view["auth"] == mode


def test_both_without_a_principal_takes_the_keys_holder(load: Load) -> None:
    assert payload(whoami(load, "both", {"x-functions-key": "k"}))["known_by"] == "key"


@pytest.mark.parametrize(
    ("function", "route", "method"),
    [
        ("whoami", "whoami", "GET"),
        ("list_copies", "copies", "GET"),
        ("start_copy", "copies", "POST"),
        ("list_jobs", "jobs", "GET"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "the master key"}, {"X-MS-CLIENT-PRINCIPAL-IDP": "aad"}])
def test_entra_refuses_a_request_without_a_principal_whatever_key_it_carries(
    load: Load, function: str, route: str, method: str, headers: dict[str, str]
) -> None:
    response = functions(load("entra"))[function](request(method, route, {}, headers=headers))
    assert is_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert payload(response)["code"] == "no_principal"


def test_a_malformed_principal_is_refused_in_both(load: Load) -> None:
    headers = {**principal(), "X-MS-CLIENT-PRINCIPAL": "bm90IGpzb24="}
    response = whoami(load, "both", headers)
    assert is_problem(response, 401) and payload(response)["code"] == "malformed_principal"


@pytest.mark.parametrize("mode", ["entra", "both"])
def test_a_principal_is_not_trusted_without_app_service_authentication_in_front(load: Load, mode: str) -> None:
    response = functions(load(mode, platform=False))["whoami"](request("GET", "whoami", headers=principal()))
    assert is_problem(response, 503)
    assert payload(response)["code"] == "COPY_AUTH"


@pytest.mark.parametrize(("mode", "level"), [("keys", "function"), ("both", "function"), ("entra", "anonymous")])
def test_the_auth_level_follows_the_mode_and_the_mode_is_said_at_start(
    load: Load, mode: str, level: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="copy_ops.edges.http_callers"):
        module = load(mode)
    assert auth_levels(module) == {level}
    assert f"auth_mode mode={mode} auth_level={level}" in caplog.text


def test_a_bad_mode_indexes_with_keys_and_refuses_every_request(load: Load) -> None:
    assert auth_levels(load("oauth")) == {"function"}
    response = functions(load("oauth"))["whoami"](request("GET", "whoami"))
    assert is_problem(response, 503) and payload(response)["code"] == "COPY_AUTH"
