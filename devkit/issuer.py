"""A local token issuer in Microsoft Entra ID's manner, for App Service Authentication as the
development host plays it (docs/callers.md, "Locally, as on Azure").

At start it makes an RSA key of its own, publishes it as a JWKS (``/discovery/keys``, named
by ``/.well-known/openid-configuration`` as Entra ID's is), and signs access tokens with it
(RS256) for an audience, carrying the claims App Service Authentication passes on: ``oid``,
``tid``, ``name``, ``preferred_username``, ``roles``, ``groups``. Named callers (``alice``,
``bob``, ``carol``) have fixed object ids and groups, so a policy can name them. Tokens
come from :meth:`LocalIssuer.token` in process, or from ``POST /token`` (JSON
``{"caller", "audience"}``) for ``python -m devkit tokens``. Development only: it signs a
token for anyone who asks, so it listens on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devkit.http_client import answer_json

DEFAULT_AUDIENCE = "api://copy-ops"
TENANT = "00000000-0000-4000-8000-00000000c0de"
TEAM_A = str(uuid.uuid5(uuid.NAMESPACE_URL, "copy-ops-devkit:group:team-a"))
TEAM_B = str(uuid.uuid5(uuid.NAMESPACE_URL, "copy-ops-devkit:group:team-b"))


@dataclass(frozen=True)
class NamedCaller:
    """A caller the issuer knows by name: its display name, app roles and groups."""

    name: str
    display: str
    roles: tuple[str, ...]
    groups: tuple[str, ...] = ()

    @property
    def object_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"copy-ops-devkit:user:{self.name}"))

    def claims(self) -> dict[str, Any]:
        return {
            "oid": self.object_id,
            "sub": self.object_id,
            "tid": TENANT,
            "name": self.display,
            "preferred_username": f"{self.name}@copy-ops.example",
            "roles": list(self.roles),
            "groups": list(self.groups),
        }


# Two callers who start and read copies, each in a team of their own, and an admin.
CALLERS = {
    caller.name: caller
    for caller in (
        NamedCaller("alice", "Alice", ("Copies.Start", "Copies.Read"), (TEAM_A,)),
        NamedCaller("bob", "Bob", ("Copies.Start", "Copies.Read"), (TEAM_B,)),
        NamedCaller("carol", "Carol", ("Copies.Admin",)),
    )
}

# What the named callers may copy under make run (COPY_POLICY, docs/callers.md "The policy"),
# by their teams' groups: alice's team from the app's incoming container into backups/alice/,
# bob's from the partner's exports into backups/bob/; carol, an admin, may copy anything.
LOCAL_POLICY: dict[str, Any] = {
    "rules": [
        {
            "name": "team-a",
            "group": TEAM_A,
            "read": [{"container": "incoming"}],
            "write": [{"container": "backups", "prefix": "alice/"}],
        },
        {
            "name": "team-b",
            "group": TEAM_B,
            "read": [{"account": "partner", "container": "exports"}],
            "write": [{"container": "backups", "prefix": "bob/"}],
        },
    ]
}


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class LocalIssuer:
    """The issuer, listening on ``host:port`` (0: a free port) once started; its URL is the
    tokens' ``iss``, as Entra ID's issuer is the URL of its tenant."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self._jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "n": _b64(numbers.n), "e": _b64(numbers.e)}
        self.kid = hashlib.sha256(json.dumps(self._jwk, sort_keys=True).encode()).hexdigest()[:16]
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> LocalIssuer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk, "kid": self.kid}]}

    def discovery(self) -> dict[str, Any]:
        """The OpenID configuration, as App Service Authentication reads Entra ID's."""
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/discovery/keys",
            "token_endpoint": f"{self.url}/token",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def token(
        self,
        caller: str | NamedCaller,
        audience: str = DEFAULT_AUDIENCE,
        lifetime: int = 3600,
        issued_at: float | None = None,
        **claims: Any,
    ) -> str:
        """An access token for ``caller`` (a name of :data:`CALLERS`, or a caller of the
        test's own), valid ``lifetime`` seconds from ``issued_at`` (now); ``claims`` added
        last, so a test can give any claim any value (None leaves it out)."""
        who = CALLERS[caller] if isinstance(caller, str) else caller
        now = int(time.time() if issued_at is None else issued_at)
        body = {
            "aud": audience,
            "iss": self.url,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "ver": "1.0",
            **who.claims(),
            **claims,
        }
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self._key, algorithm="RS256", headers={"kid": self.kid})


def _handler(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            answer_json(self, status, body)

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._answer(200, issuer.discovery())
            elif self.path == "/discovery/keys":
                self._answer(200, issuer.jwks())
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if self.path != "/token":
                self._answer(404, {"error": "not_found"})
                return
            try:
                asked = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                name, audience = asked["caller"], asked.get("audience", DEFAULT_AUDIENCE)
                if name not in CALLERS or not isinstance(audience, str):
                    raise KeyError(name)
            except (ValueError, KeyError, TypeError):
                self._answer(400, {"error": "invalid_request", "callers": sorted(CALLERS)})
                return
            token = issuer.token(name, audience)
            self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    return Handler
