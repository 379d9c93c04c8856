"""A local stand-in of the managed-identity endpoint of App Service and Functions.

Azure gives an app with a managed identity two settings, ``IDENTITY_ENDPOINT`` and
``IDENTITY_HEADER``; azure-identity's ``DefaultAzureCredential`` finds them and asks the
endpoint for a token (``GET ?api-version=2019-08-01&resource=...[&client_id=...]`` with
the header ``X-IDENTITY-HEADER``). This server answers that request as Azure does, with
a JWT that Azurite's ``--oauth basic`` accepts (issuer ``https://sts.windows.net/...``,
audience ``https://storage.azure.com``, valid now; Azurite does not check signatures),
so the app's unchanged credential takes its real managed-identity path. It refuses a
wrong header, and remembers every request (tests check the client id asked for).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devkit.http_client import answer_json

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SYSTEM_ASSIGNED = "00000000-0000-0000-0000-0000000000a1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_token(audience: str, client_id: str | None, lifetime: int = 3600) -> str:
    now = int(time.time())
    object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)) if client_id else SYSTEM_ASSIGNED
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": object_id,
        "tid": TENANT,
        "appid": client_id or SYSTEM_ASSIGNED,
        "sub": object_id,
        "ver": "1.0",
    }
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(b"not-a-real-key", f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


class ManagedIdentityEndpoint:
    """Serve on a free loopback port; ``env`` is what the app needs to find it."""

    def __init__(self) -> None:
        self.secret = secrets.token_hex(16)
        self.requests: list[dict[str, str]] = []
        self.tokens: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="identity-endpoint", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"

    @property
    def env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret}

    def start(self) -> ManagedIdentityEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _issue(self, query: dict[str, str]) -> dict[str, Any]:
        resource = query.get("resource", "").removesuffix("/.default")
        token = make_token(resource, query.get("client_id"))
        with self._lock:
            self.requests.append(query)
            self.tokens.append(token)
        return {
            "access_token": token,
            "expires_on": str(int(time.time()) + 3600),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": query.get("client_id", SYSTEM_ASSIGNED),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}
                if self.headers.get("X-IDENTITY-HEADER") != endpoint.secret:
                    status, body = 400, {"error": "invalid_request", "error_description": "bad X-IDENTITY-HEADER"}
                elif query.get("api-version") != "2019-08-01" or not query.get("resource"):
                    status, body = 400, {"error": "invalid_request", "error_description": "api-version, resource"}
                else:
                    status, body = 200, endpoint._issue(query)
                answer_json(self, status, body)

        return Handler
