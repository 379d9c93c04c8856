"""The CLI signed in with Microsoft Entra ID (``--audience``, ``COPY_OPS_AUDIENCE``): with a
credential injected in azure-identity's place (no network but loopback), it asks for the
audience's ``/.default``, sends the token as the bearer and never the key (but to the host's
admin API, which takes only its master key), says a credential's failure in one line, and
asks again before the token expires; against the development host playing App Service
Authentication, ``whoami`` with a token of the development kit's issuer names the caller.
azure-identity is the one Azure package the CLI imports, and only when signing in."""

from __future__ import annotations

import ast
import io
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from copy_ops_cli import signin
from copy_ops_cli.main import main
from copy_ops_cli.signin import REFRESH_SECONDS, SignedIn, SignInError, scope_of
from devkit import PROJECT_ROOT, PendingCopyProxy, http_call
from devkit.issuer import CALLERS, LocalIssuer
from tests.support.devhost_process import DevHostProcess

AUDIENCE = "api://copy-ops-tests"
NOW = 1_800_000_000.0
WHOAMI = {"known_by": "entra", "object_id": CALLERS["alice"].object_id, "name": "Alice", "auth": "entra"}


@dataclass
class FakeCredential:
    """azure-identity's place: a token per ``get_token``, numbered, valid for ``lifetime``
    seconds from the clock's ``now``; or the ``error`` it raises."""

    now: float = NOW
    lifetime: int = 3600
    error: BaseException | None = None
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str) -> AccessToken:
        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(f"token-{len(self.scopes)}", int(self.now) + self.lifetime)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class RecordingApp:
    """copy-ops' API as far as the CLI's requests go, on loopback: what each request carried."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="recording-app", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                app.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.startswith("/api/copies"):
                    self._answer(200, {"items": [], "continuation": None})
                else:
                    self._answer(200, WHOAMI)

            def do_POST(self) -> None:
                self._answer(202, None)

        return Handler


@pytest.fixture(autouse=True)
def _no_settings_of_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test gives: a COPY_OPS_* of the shell running the tests changes nothing."""
    for name in ("COPY_OPS_URL", "COPY_OPS_KEY", "COPY_OPS_TOKEN", "COPY_OPS_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def app() -> Iterator[RecordingApp]:
    running = RecordingApp()
    yield running
    running.stop()


def cli(*argv: str, credential: FakeCredential) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err, credential=lambda: credential)
    return status, out.getvalue(), err.getvalue()


def test_signed_in_it_sends_the_bearer_and_never_the_key(app: RecordingApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in the environment too: signed in, the caller is who signed in, not a key's holder."""
    monkeypatch.setenv("COPY_OPS_KEY", "a-function-key")
    monkeypatch.setenv("COPY_OPS_AUDIENCE", AUDIENCE)
    credential = FakeCredential()
    assert cli("--url", app.url, "ls", credential=credential) == (0, "no copies\n", "")
    assert cli("--url", app.url, "whoami", "--key", "another-key", credential=credential)[0] == 0
    assert credential.scopes == [(f"{AUDIENCE}/.default",)] * 2  # each run signs in
    assert [(seen.path.split("?")[0], seen.headers.get("authorization")) for seen in app.seen] == [
        ("/api/copies", "Bearer token-1"),
        ("/api/whoami", "Bearer token-2"),
    ]
    assert all("x-functions-key" not in seen.headers for seen in app.seen)


def test_the_sweep_takes_the_master_key_besides_the_bearer(app: RecordingApp) -> None:
    """The host's admin API wants its master key whoever signed in; App Service
    Authentication in front of it wants the token."""
    status, out, err = cli(
        "--url", app.url, "--key", "master", "--audience", AUDIENCE, "sweep", credential=FakeCredential()
    )
    assert (status, out, err) == (0, "sweep started\n", "")
    [seen] = app.seen
    assert (seen.path, seen.headers["x-functions-key"], seen.headers["authorization"]) == (
        "/admin/functions/sweep",
        "master",
        "Bearer token-1",
    )


def test_not_signed_in_the_key_goes_as_before(app: RecordingApp) -> None:
    credential = FakeCredential()
    assert cli("--url", app.url, "--key", "k", "ls", credential=credential)[0] == 0
    [seen] = app.seen
    assert seen.headers["x-functions-key"] == "k" and "authorization" not in seen.headers
    assert credential.scopes == []


MULTI_LINE = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n\tEnvironmentCredential: EnvironmentCredential authentication unavailable.\n"
    "\tAzureCliCredential: Please run 'az login' to set up an account\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines here at "
    "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            ClientAuthenticationError(MULTI_LINE),
            f"copy-ops: cannot sign in for {AUDIENCE}: DefaultAzureCredential failed to retrieve a token from the "
            "included credentials. Attempted credentials: EnvironmentCredential: EnvironmentCredential authentication "
            "unavailable. AzureCliCredential: Please run 'az login' to set up an account To mitigate",
        ),
        (
            ImportError("No module named 'azure.identity'"),
            "copy-ops: cannot sign in: azure-identity is not installed (pip install azure-identity)",
        ),
        (ValueError("x" * 2000), f"copy-ops: cannot sign in for {AUDIENCE}: {'x' * (signin.ERROR_CHARACTERS - 1)}…"),
    ],
    ids=["default-credential", "not-installed", "long"],
)
def test_a_credential_that_fails_is_one_line_and_nothing_is_sent(
    app: RecordingApp, error: BaseException, said: str
) -> None:
    status, out, err = cli("--url", app.url, "--audience", AUDIENCE, "ls", credential=FakeCredential(error=error))
    assert (status, out) == (1, "")
    assert err.endswith("\n") and "\n" not in err[:-1], err
    assert err.startswith(said), err
    assert app.seen == []


def test_a_token_and_an_audience_together_are_bad_usage(app: RecordingApp) -> None:
    credential = FakeCredential()
    status, _, err = cli("--url", app.url, "--token", "t", "--audience", AUDIENCE, "ls", credential=credential)
    assert (status, err) == (
        2,
        "copy-ops: give --token or --audience (COPY_OPS_TOKEN or COPY_OPS_AUDIENCE), not both\n",
    )
    assert app.seen == [] and credential.scopes == []


def test_a_token_about_to_expire_is_asked_for_again() -> None:
    credential = FakeCredential()
    clock = [NOW]
    signed_in = SignedIn(AUDIENCE, lambda: credential, clock=lambda: clock[0])
    assert signed_in.token() == "token-1"
    clock[0] = NOW + 3600 - REFRESH_SECONDS - 1
    assert signed_in.token() == "token-1"
    clock[0] += 2
    credential.now = clock[0]
    assert signed_in.token() == "token-2"
    credential.error = ClientAuthenticationError("the login expired")
    clock[0] += 3600
    with pytest.raises(SignInError, match=f"^cannot sign in for {AUDIENCE}: the login expired$"):
        signed_in.token()


@pytest.mark.parametrize(
    ("audience", "scope"),
    [
        ("api://8a1f-client", "api://8a1f-client/.default"),
        ("api://8a1f-client/", "api://8a1f-client/.default"),
        (" 6e2c0d4f-58cb-4b1f-9f0a-6a0c2b9d7e11 ", "6e2c0d4f-58cb-4b1f-9f0a-6a0c2b9d7e11/.default"),
        ("api://8a1f-client/.default", "api://8a1f-client/.default"),
    ],
)
def test_the_scope_is_the_audiences_default(audience: str, scope: str) -> None:
    assert scope_of(audience) == scope


def azure_imports(path: Path) -> list[tuple[str, bool]]:
    """Each import of an Azure package in ``path``: its name, and whether it is at module level."""
    tree = ast.parse(path.read_text(), str(path))
    nested = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(name, id(node) not in nested) for name in names if name.split(".")[0] == "azure"]
    return found


def test_azure_identity_is_the_one_azure_package_and_imported_only_to_sign_in() -> None:
    found = {path.name: azure_imports(path) for path in sorted((PROJECT_ROOT / "copy_ops_cli").glob("*.py"))}
    assert {name: imports for name, imports in found.items() if imports} == {"signin.py": [("azure.identity", False)]}


# -- against the development host --------------------------------------------------------


@dataclass
class IssuerCredential:
    """A credential of the development kit's issuer: a named caller's token for the audience
    the scope names, over the issuer's ``/token``, as ``python -m devkit tokens`` asks."""

    issuer: str
    caller: str
    scopes: list[str] = field(default_factory=list)

    def get_token(self, *scopes: str) -> AccessToken:
        [scope] = scopes
        self.scopes.append(scope)
        reply = http_call(
            f"{self.issuer}/token", "POST", {"caller": self.caller, "audience": scope.removesuffix("/.default")}
        )
        assert reply.status == 200, reply.body
        answer = reply.json()
        return AccessToken(answer["access_token"], int(NOW) * 2)


@pytest.mark.system
def test_whoami_signed_in_names_the_caller_the_host_validated(_proxy: PendingCopyProxy) -> None:
    with LocalIssuer() as issuer:
        host = DevHostProcess(
            env={
                "COPY_STORAGE": _proxy.connection_string,
                "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
                "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
                "COPY_AUTH": "entra",
                "DEVHOST_AUTH_ISSUER": issuer.url,
                "DEVHOST_AUTH_AUDIENCE": AUDIENCE,
            }
        )
        try:
            carol = IssuerCredential(issuer.url, "carol")
            out, err = io.StringIO(), io.StringIO()
            argv = ["--url", host.url, "--key", "unused", "--audience", AUDIENCE, "whoami"]
            assert main(argv, stdout=out, stderr=err, credential=lambda: carol) == 0, err.getvalue()
            assert carol.scopes == [f"{AUDIENCE}/.default"]
            lines = out.getvalue().splitlines()
            assert lines[0] == "Carol, signed in with Microsoft Entra ID"
            assert f"  object id  {CALLERS['carol'].object_id}" in lines and "  admin      yes" in lines
            # Another app's audience: the host refuses the token, and the CLI says so in one line.
            other = IssuerCredential(issuer.url, "alice")
            refused = io.StringIO()
            argv = ["--url", host.url, "--audience", "api://another-app", "whoami"]
            assert main(argv, stdout=io.StringIO(), stderr=refused, credential=lambda: other) == 1
            assert refused.getvalue().startswith("copy-ops: 401 ") and refused.getvalue().count("\n") == 1
        finally:
            host.stop()
