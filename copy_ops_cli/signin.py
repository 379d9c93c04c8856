"""Signing in with Microsoft Entra ID for the app's audience (``--audience``,
``COPY_OPS_AUDIENCE``): a bearer token from azure-identity's ``DefaultAzureCredential``
(for a person the Azure CLI's login, ``az login``; for a pipeline its service principal,
workload identity or managed identity), sent as ``Authorization`` on every request and
asked for again shortly before it expires, so a ``--watch`` of hours stays signed in.

azure-identity is imported here alone, and only when signing in: a command run with a
key never loads it (pyproject.toml, the CLI's import contract, says why it is the one
Azure package the CLI may use)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Protocol

import httpx

# A token with less than this left is asked for again: a request sent with it still
# reaches the app inside its lifetime.
REFRESH_SECONDS = 300
# Where a credential's error is cut, on the one line: DefaultAzureCredential's says what
# each of its sources answered, which runs long.
ERROR_CHARACTERS = 600


class Token(Protocol):
    """An access token as azure-identity gives it (``azure.core.credentials.AccessToken``)."""

    @property
    def token(self) -> str: ...

    @property
    def expires_on(self) -> int: ...


class Credential(Protocol):
    """What the CLI asks of a credential: a token for a scope (azure-identity's ``get_token``)."""

    def get_token(self, *scopes: str) -> Token: ...


class SignInError(Exception):
    """No token for the app's audience: one line for the operator, exit status 1."""


def scope_of(audience: str) -> str:
    """The scope to ask for: the audience's ``/.default`` (every app role the caller holds),
    from ``api://<client id>``, the client id itself, or a scope given whole."""
    audience = audience.strip()
    return audience if audience.endswith("/.default") else f"{audience.rstrip('/')}/.default"


def default_credential() -> Credential:
    """``DefaultAzureCredential``, without the browser: a person signs in with ``az login``
    (or ``azd auth login``) first, a pipeline with its own identity's settings."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= ERROR_CHARACTERS else text[: ERROR_CHARACTERS - 1] + "…"


class SignedIn(httpx.Auth):
    """The bearer token of the signed-in caller on each request (an httpx auth flow)."""

    def __init__(
        self,
        audience: str,
        credential: Callable[[], Credential] = default_credential,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audience = audience
        self.scope = scope_of(audience)
        self._make_credential = credential
        self._credential: Credential | None = None
        self._token: Token | None = None
        self._clock = clock

    def token(self) -> str:
        """The token, asked for when there is none yet or it is about to expire."""
        if self._token is None or self._token.expires_on - self._clock() < REFRESH_SECONDS:
            try:
                if self._credential is None:
                    self._credential = self._make_credential()
                self._token = self._credential.get_token(self.scope)
            except ImportError:
                missing = "cannot sign in: azure-identity is not installed (pip install azure-identity)"
                raise SignInError(missing) from None
            except Exception as error:
                # Whatever a credential raises (no login, an expired one, a refused consent,
                # a bad setting) is one reason the operator can act on, said once.
                raise SignInError(f"cannot sign in for {self.audience}: {_one_line(error)}") from None
        return self._token.token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request
