"""App Service Authentication as the development host plays it, when ``COPY_AUTH`` is
``entra`` or ``both`` (docs/callers.md, "Locally, as on Azure").

In front of every request, as the platform is: every ``X-MS-CLIENT-PRINCIPAL*`` and
``X-MS-TOKEN-*`` header a client sent is dropped; an ``Authorization: Bearer`` token is
validated against the issuer's published keys (signature, RS256 only, issuer, audience,
expiry and not-before, with the platform's five minutes of clock skew) and, when valid,
the principal headers are set from its claims as the platform sets them; an invalid token
is refused 401. Without a token, ``entra`` is ``requireAuthentication`` with ``Return401``
(refused), ``both`` lets the request through with no principal (``AllowAnonymous``), for the
Functions host's key check. Azure's 401 has an empty body; this one is problem+json, like
the host's other errors, and says what was wrong with the token.

The issuer is ``DEVHOST_AUTH_ISSUER`` (its OpenID configuration names the keys, as
``openIdIssuer`` does in authsettingsV2); unset, the host runs a local one of the
development kit's (:mod:`devkit.issuer`) on the next port up from its own (or, that one
taken, a free port its log names: ``app_service_auth``). The audience is
``DEVHOST_AUTH_AUDIENCE`` (``allowedAudiences``), default ``api://copy-ops``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import jwt

from devkit.http_client import http_call
from devkit.issuer import DEFAULT_AUDIENCE, LocalIssuer

logger = logging.getLogger("devhost")
MODES = ("entra", "both")
# App Service Authentication's (and .NET's) default tolerance of the clock.
CLOCK_SKEW_SECONDS = 300
STRIPPED = ("x-ms-client-principal", "x-ms-token-")
# How the platform names the claims it passes on: .NET's inbound map for a token of Entra ID
# (oid, tid and the like to schema URIs), roles and groups under their own names.
CLAIM_TYPES = {
    "oid": "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "tid": "http://schemas.microsoft.com/identity/claims/tenantid",
    "sub": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "upn": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "unique_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "scp": "http://schemas.microsoft.com/identity/claims/scope",
}
NAME_TYPE = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
# A request refused in front of the app: its status, WWW-Authenticate challenge and detail.
Refusal = tuple[int, str, str]


class AppServiceAuth:
    def __init__(self, mode: str, issuer: str, audience: str, local: LocalIssuer | None = None) -> None:
        self.mode = mode
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._local = local
        self._keys: jwt.PyJWKClient | None = None

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str], port: int) -> AppServiceAuth | None:
        """The emulation ``COPY_AUTH`` asks for, or None (``keys``: nothing in front). It says
        so to the app as the platform does: ``WEBSITE_AUTH_ENABLED=True``."""
        mode = environ.get("COPY_AUTH", "").strip().lower()
        if mode not in MODES:
            return None
        environ["WEBSITE_AUTH_ENABLED"] = "True"
        audience = environ.get("DEVHOST_AUTH_AUDIENCE") or DEFAULT_AUDIENCE
        issuer = environ.get("DEVHOST_AUTH_ISSUER")
        local = None
        if not issuer:
            try:
                local = LocalIssuer(port + 1)
            except OSError:
                # That port is taken: any free one, which the line below names.
                local = LocalIssuer(0)
            issuer = local.start().url
        logger.info(
            "app_service_auth mode=%s issuer=%s audience=%s local_issuer=%s", mode, issuer, audience, bool(local)
        )
        if local is not None:
            logger.info("its named callers' tokens: python -m devkit tokens --issuer %s", issuer)
        return cls(mode, issuer, audience, local)

    def stop(self) -> None:
        if self._local is not None:
            self._local.stop()

    def admit(self, headers: MutableMapping[str, str]) -> Refusal | None:
        """Put ``headers`` as the app would get them behind the platform; the refusal
        (status, ``WWW-Authenticate``, detail) when the request goes no further."""
        for name in [name for name in headers if name.lower().startswith(STRIPPED)]:
            del headers[name]
        authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), "")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            if self.mode == "both":
                return None
            return 401, 'Bearer realm="copy-ops"', "sign in: this app takes only callers signed in with Entra ID"
        try:
            claims = self._validate(token.strip())
        except (jwt.PyJWTError, OSError, ValueError, KeyError) as error:
            logger.info("token_refused reason=%s", type(error).__name__)
            return 401, 'Bearer realm="copy-ops", error="invalid_token"', f"the bearer token is not valid: {error}"
        headers.update(principal_headers(claims))
        return None

    def _validate(self, token: str) -> dict[str, Any]:
        if self._keys is None:
            # Read once, as the platform reads the issuer's OpenID configuration.
            discovery = http_call(f"{self.issuer}/.well-known/openid-configuration", "GET").json()
            self._keys = jwt.PyJWKClient(discovery["jwks_uri"], timeout=10)
        key = self._keys.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=self.audience,
            issuer=self.issuer,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
        return claims


def principal_headers(claims: Mapping[str, Any]) -> dict[str, str]:
    """The headers App Service Authentication sets for a valid token of Entra ID: the
    principal (every claim, one per value, as base64 JSON), its id, name and provider."""
    pairs = [
        {"typ": CLAIM_TYPES.get(name, name), "val": _text(value)}
        for name, values in claims.items()
        for value in (values if isinstance(values, list) else [values])
    ]
    principal = {"auth_typ": "aad", "claims": pairs, "name_typ": NAME_TYPE, "role_typ": ROLE_TYPE}
    headers = {
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
    }
    if claims.get("oid"):
        headers["X-MS-CLIENT-PRINCIPAL-ID"] = str(claims["oid"])
    name = claims.get("preferred_username") or claims.get("upn") or claims.get("name")
    if name:
        headers["X-MS-CLIENT-PRINCIPAL-NAME"] = str(name)
    return headers


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Numbers, booleans and objects as JSON writes them: 1700000000, true, {"a": 1}.
    return json.dumps(value)
