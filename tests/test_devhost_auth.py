"""App Service Authentication as the development host plays it, through the real host process
with real signed tokens of the development kit's issuer: a client's principal headers are
dropped, a bad token (expired, another audience, another issuer, a tampered signature, no
signature) is refused 401, a good one reaches the app as the platform would pass it on."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from copy_ops_cli.main import main as cli
from devkit import PROJECT_ROOT, PendingCopyProxy
from devkit.issuer import CALLERS, LocalIssuer, NamedCaller
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess

pytestmark = pytest.mark.system

AUDIENCE = "api://copy-ops-tests"
CAROL = CALLERS["carol"]
FORGED = base64.b64encode(
    json.dumps(
        {
            "auth_typ": "aad",
            "claims": [
                {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": CAROL.object_id},
                {"typ": "roles", "val": "Copies.Admin"},
            ],
        }
    ).encode()
).decode()
FORGERY = {
    "X-MS-CLIENT-PRINCIPAL": FORGED,
    "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    "X-MS-CLIENT-PRINCIPAL-ID": CAROL.object_id,
}


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as running:
        yield running


@pytest.fixture(scope="module")
def other() -> Iterator[LocalIssuer]:
    """Another issuer: another tenant's keys, unknown to the host."""
    with LocalIssuer() as running:
        yield running


def start_host(mode: str, issuer: LocalIssuer, proxy: PendingCopyProxy) -> DevHostProcess:
    return DevHostProcess(
        env={
            "COPY_STORAGE": proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
            "COPY_AUTH": mode,
            "DEVHOST_AUTH_ISSUER": issuer.url,
            "DEVHOST_AUTH_AUDIENCE": AUDIENCE,
        }
    )


@pytest.fixture(scope="module")
def entra(issuer: LocalIssuer, _proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    host = start_host("entra", issuer, _proxy)
    yield host
    host.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_good_token_reaches_the_app_as_its_caller(entra: DevHostProcess, issuer: LocalIssuer) -> None:
    alice = CALLERS["alice"]
    reply = entra.call("GET", "/api/whoami", headers=bearer(issuer.token("alice", AUDIENCE)))
    assert reply.status == 200, reply.body
    view = reply.json()
    assert (view["known_by"], view["object_id"], view["name"]) == ("entra", alice.object_id, "Alice")
    assert view["roles"] == sorted(alice.roles) and view["groups"] == list(alice.groups)
    assert view["admin"] is False and view["auth"] == "entra"


def test_a_forged_principal_is_dropped_and_the_tokens_caller_set(entra: DevHostProcess, issuer: LocalIssuer) -> None:
    # Spelt otherwise than the platform spells them: dropped all the same, whatever the case.
    lower = {name.lower(): value for name, value in FORGERY.items()}
    headers = {**lower, **bearer(issuer.token("bob", AUDIENCE))}
    view = entra.call("GET", "/api/whoami", headers=headers).json()
    assert view["object_id"] == CALLERS["bob"].object_id and view["admin"] is False


def test_a_forged_principal_without_a_token_is_refused_as_the_platform_refuses(entra: DevHostProcess) -> None:
    reply = entra.call("GET", "/api/whoami", headers={**FORGERY, "x-functions-key": "any key"})
    assert reply.status == 401
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(reply.body)["status"] == 401


def test_a_signed_in_caller_starts_a_copy_with_no_key(entra: DevHostProcess, issuer: LocalIssuer, blobs: Blobs) -> None:
    """In entra mode the functions are anonymous to the host: the token alone is enough. With
    no COPY_POLICY only admins copy: carol does, alice is refused (tests/test_policy_devhost.py
    has callers under a policy)."""
    blobs.put(blobs.src, "a.bin", b"data")
    body = {
        "source": {"container": blobs.src, "blob": "a.bin"},
        "destination": {"container": blobs.dst, "blob": "a.bin"},
    }
    reply = entra.call("POST", "/api/copies", body, headers=bearer(issuer.token("carol", AUDIENCE)))
    assert reply.status == 201, reply.body
    assert reply.json()["state"] == "succeeded"
    refused = entra.call("POST", "/api/copies", body, headers=bearer(issuer.token("alice", AUDIENCE)))
    assert refused.status == 403 and "only admins may copy" in refused.json()["detail"]
    assert entra.call("POST", "/api/copies", body, headers={"x-functions-key": "k"}).status == 401


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["Copies.Admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def unsigned(token: str) -> str:
    _, payload, _ = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    return f"{header}.{payload}."


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda issuer, other: issuer.token("alice", AUDIENCE, lifetime=60, issued_at=0), "expired"),
        (lambda issuer, other: issuer.token("alice", "api://another-app"), "Audience"),
        (
            lambda issuer, other: issuer.token("alice", AUDIENCE, iss="https://sts.windows.net/another-tenant/"),
            "issuer",
        ),
        (lambda issuer, other: other.token("alice", AUDIENCE), "signing key"),
        (lambda issuer, other: tampered(issuer.token("alice", AUDIENCE)), "Signature verification failed"),
        (lambda issuer, other: unsigned(issuer.token("alice", AUDIENCE)), ""),
        (lambda issuer, other: issuer.token("alice", AUDIENCE, exp=None), "exp"),
        (lambda issuer, other: "not a token", ""),
    ],
    ids=["expired", "audience", "tenant", "other-issuers-key", "tampered", "unsigned", "no-expiry", "garbage"],
)
def test_a_bad_token_is_refused(
    entra: DevHostProcess, issuer: LocalIssuer, other: LocalIssuer, make: object, said: str
) -> None:
    token = make(issuer, other)  # type: ignore[operator]
    reply = entra.call("GET", "/api/whoami", headers={**FORGERY, **bearer(token)})
    assert reply.status == 401, reply.body
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]
    assert said in json.loads(reply.body)["detail"]


def test_both_drops_a_forged_principal_and_takes_the_key(issuer: LocalIssuer, _proxy: PendingCopyProxy) -> None:
    host = start_host("both", issuer, _proxy)
    try:
        view = host.call("GET", "/api/whoami", headers=FORGERY).json()
        assert (view["known_by"], view["admin"], view["auth"]) == ("key", True, "both")
        signed = host.call("GET", "/api/whoami", headers=bearer(issuer.token("carol", AUDIENCE))).json()
        assert (signed["known_by"], signed["object_id"], signed["admin"]) == ("entra", CAROL.object_id, True)
        assert "auth_mode mode=both auth_level=function" in host.log()
    finally:
        host.stop()


def test_the_cli_says_who_the_app_takes_you_for(entra: DevHostProcess, issuer: LocalIssuer) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = cli(["whoami", "--url", entra.url, "--token", issuer.token("carol", AUDIENCE)], stdout=out, stderr=err)
    assert status == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == "Carol, signed in with Microsoft Entra ID"
    assert f"  object id  {CAROL.object_id}" in lines and "  admin      yes" in lines
    refused = io.StringIO()
    assert cli(["whoami", "--url", entra.url], stdout=io.StringIO(), stderr=refused) == 1
    assert refused.getvalue().startswith("copy-ops: 401 Unauthorized: sign in")


def test_the_hosts_own_issuer_gives_the_named_callers_tokens(_proxy: PendingCopyProxy) -> None:
    """With no issuer named, the host runs one of its own (as make run would have it), and
    ``python -m devkit tokens`` prints each named caller's token from it."""
    host = DevHostProcess(env={"COPY_STORAGE": _proxy.connection_string, "COPY_AUTH": "entra"})
    try:
        found = re.search(
            r"app_service_auth mode=entra issuer=(\S+) audience=api://copy-ops local_issuer=True", host.log()
        )
        assert found, host.log()[-2000:]
        command = [sys.executable, "-m", "devkit", "tokens", "--issuer", found[1]]
        printed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True)
        tokens = dict(line.split(" ", 1) for line in printed.stdout.splitlines())
        assert sorted(tokens) == sorted(CALLERS)
        for name, token in tokens.items():
            caller: NamedCaller = CALLERS[name]
            view = host.call("GET", "/api/whoami", headers=bearer(token)).json()
            assert view["object_id"] == caller.object_id and view["roles"] == sorted(caller.roles)
            assert f"object id {caller.object_id}" in printed.stderr
        alone = subprocess.run(
            [*command, "--caller", "bob"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True
        )
        [token] = alone.stdout.split()
        assert host.call("GET", "/api/whoami", headers=bearer(token)).json()["object_id"] == CALLERS["bob"].object_id
    finally:
        host.stop()
