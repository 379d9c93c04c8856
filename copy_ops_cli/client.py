"""The HTTP API, called: JSON in and out, the function key as ``x-functions-key``, and a
problem+json answer raised as :class:`ApiError` with one readable line."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

TIMEOUT_SECONDS = 60


@dataclass
class ApiError(Exception):
    status: int
    line: str

    def __str__(self) -> str:
        return self.line


def problem_line(status: int, body: bytes) -> str:
    """A problem+json answer as one line: status, title, detail, and each field named."""
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        text = body.decode("utf-8", errors="replace").strip()
        return f"{status}: {text[:200]}" if text else f"{status}"
    parts = [f"{status} {problem.get('title') or ''}".strip()]
    if problem.get("detail"):
        parts.append(str(problem["detail"]))
    errors = problem.get("errors")
    if isinstance(errors, list):
        fields = [f"{item.get('field')}: {item.get('message')}" for item in errors if isinstance(item, dict)]
        if fields:
            parts.append("; ".join(fields))
    return ": ".join(parts)


class Client:
    def __init__(self, url: str, key: str | None) -> None:
        if not url.startswith(("https://", "http://")):
            raise ApiError(0, f"the app's URL must start with https:// or http://, not {url!r}")
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        """The answer's JSON (None for an empty answer); :class:`ApiError` otherwise."""
        raw = self.raw(method, path, body, query)
        return json.loads(raw) if raw.strip() else None

    def raw(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> bytes:
        url = f"{self.url}{path}"
        if query:
            url += "?" + urlencode({name: value for name, value in query.items() if value is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.key:
            headers["x-functions-key"] = self.key
        # The scheme is http(s): checked when the client was made.
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                return bytes(answer.read())
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, problem_line(error.code, error.read())) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(0, f"cannot reach {self.url}: {reason}") from None
