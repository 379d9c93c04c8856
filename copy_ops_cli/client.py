"""The HTTP API, called with httpx: JSON in and out, the function key as
``x-functions-key`` or a bearer token of Microsoft Entra ID as ``Authorization`` (given, or
got by signing in: :mod:`copy_ops_cli.signin`), and a problem+json answer raised as
:class:`ApiError` with one readable line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT_SECONDS = 60.0
# The Functions host's own admin API (``sweep``): it takes only the master key, whoever
# signed in.
ADMIN_PATHS = "/admin/"


@dataclass
class ApiError(Exception):
    status: int
    line: str

    def __str__(self) -> str:
        return self.line


def problem_line(status: int, body: bytes) -> str:
    """A problem+json answer as one line: status, title, and each field named once (the
    detail of a refusal with fields only says them again), else the detail."""
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        text = " ".join(body.decode("utf-8", errors="replace").split())
        return f"{status}: {text[:200]}" if text else f"{status}"
    parts = [f"{status} {problem.get('title') or ''}".strip()]
    errors = problem.get("errors")
    fields: dict[str, None] = {}
    if isinstance(errors, list):
        fields = dict.fromkeys(
            f"{item.get('field')}: {item.get('message')}" for item in errors if isinstance(item, dict)
        )
    if fields:
        parts.append("; ".join(fields))
    elif problem.get("detail"):
        parts.append(str(problem["detail"]))
    return ": ".join(parts)


class Client:
    """The app at ``url``. With a bearer token (``token``, or ``auth`` signing in) the key is
    not sent to copy-ops' API: the caller is who signed in, never a key's holder (an admin)
    by a key left in the environment. It goes only to the host's admin API, which wants it."""

    def __init__(self, url: str, key: str | None, token: str | None = None, auth: httpx.Auth | None = None) -> None:
        if not url.startswith(("https://", "http://")):
            raise ApiError(0, f"the app's URL must start with https:// or http://, not {url!r}")
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json"}
        signed_in = bool(token) or auth is not None
        self._admin_key = key if signed_in else None
        if key and not signed_in:
            headers["x-functions-key"] = key
        if token:
            headers["Authorization"] = f"Bearer {token.strip()}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS, auth=auth)

    def call(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        """The answer's JSON (None for an empty answer); :class:`ApiError` otherwise."""
        raw = self.raw(method, path, body, query)
        return json.loads(raw) if raw.strip() else None

    def raw(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> bytes:
        return self._answer(method, path, body, query).content

    def parts(self, path: str) -> Iterator[bytes]:
        """``GET path`` and every part it links as ``rel="next"`` (a report in parts), in
        order. Only a link to a path of this app is followed."""
        following: str | None = path
        while following is not None:
            answer = self._answer("GET", following)
            yield answer.content
            link = answer.links.get("next", {}).get("url")
            following = link if link and link.startswith("/api/") else None

    def _answer(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> httpx.Response:
        admin = {"x-functions-key": self._admin_key} if self._admin_key and path.startswith(ADMIN_PATHS) else None
        try:
            answer = self._http.request(method, path, json=body, params=query, headers=admin)
        except httpx.HTTPError as error:
            raise ApiError(0, f"cannot reach {self.url}: {error}") from None
        if answer.status_code >= 400:
            raise ApiError(answer.status_code, problem_line(answer.status_code, answer.content))
        return answer

    def close(self) -> None:
        self._http.close()
