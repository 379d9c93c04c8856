"""Azure Functions route templates (``copies/{id}``) as matchers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_PARAMETER = re.compile(r"\{(?P<star>\*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(?P<optional>\?)?\}")


def template_pattern(template: str) -> re.Pattern[str]:
    """A regex for a route template: ``{name}``, ``{name:constraint}``, ``{name?}``, ``{*rest}``."""
    parts: list[str] = []
    for segment in template.strip("/").split("/"):
        match = _PARAMETER.fullmatch(segment)
        if match is None:
            parts.append("/" + re.escape(segment))
        elif match["star"]:
            parts.append(f"(?:/(?P<{match['name']}>.*))?")
        elif match["optional"]:
            parts.append(f"(?:/(?P<{match['name']}>[^/]+))?")
        else:
            parts.append(f"/(?P<{match['name']}>[^/]+)")
    return re.compile("".join(parts) + "/?")


@dataclass
class Route:
    template: str
    pattern: re.Pattern[str]
    # method -> the user function
    handlers: dict[str, Any] = field(default_factory=dict)


class Router:
    def __init__(self, prefix: str) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._routes: dict[str, Route] = {}

    def add(self, template: str, methods: list[str], handler: Any) -> None:
        route = self._routes.setdefault(template, Route(template, template_pattern(template)))
        for method in methods:
            route.handlers[method.upper()] = handler

    def resolve(self, path: str) -> tuple[Route, dict[str, str]] | None:
        if not path.startswith(self.prefix + "/"):
            return None
        rest = path[len(self.prefix) :]
        for route in self._routes.values():
            found = route.pattern.fullmatch(rest)
            if found is not None:
                return route, {k: v for k, v in found.groupdict().items() if v is not None}
        return None

    @property
    def templates(self) -> list[str]:
        return sorted(self._routes)
