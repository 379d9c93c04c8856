"""The development host's own parts: route templates and local settings precedence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devhost.host import load_local_settings
from devhost.routes import Router, template_pattern
from devkit.inputs import http_request, timer_request


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("copies", "/copies", {}),
        ("copies", "/copies/", {}),
        ("copies/{id}", "/copies/abc-1", {"id": "abc-1"}),
        ("copies/{id}/abort", "/copies/x/abort", {"id": "x"}),
        ("copies/{id:int}", "/copies/12", {"id": "12"}),
        ("files/{name?}", "/files", {}),
        ("files/{*rest}", "/files/a/b/c", {"rest": "a/b/c"}),
        ("openapi.json", "/openapi.json", {}),
    ],
)
def test_templates_match_and_extract(template: str, path: str, params: dict[str, str]) -> None:
    found = template_pattern(template).fullmatch(path)
    assert found is not None
    assert {k: v for k, v in found.groupdict().items() if v is not None} == params


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("copies", "/copies/x"),
        ("copies/{id}", "/copies"),
        ("copies/{id}", "/copies/a/b"),
        ("openapi.json", "/openapiXjson"),
    ],
)
def test_templates_do_not_overmatch(template: str, path: str) -> None:
    assert template_pattern(template).fullmatch(path) is None


def test_router_matches_under_its_prefix_only() -> None:
    router = Router("api")
    router.add("copies/{id}", ["GET"], object())
    assert router.resolve("/api/copies/1") is not None
    assert router.resolve("/copies/1") is None
    assert router.resolve("/apix/copies/1") is None


def test_the_environment_takes_precedence_over_local_settings(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"A": "file", "B": "file"}}))
    environ = {"A": "env"}
    applied = load_local_settings(path, environ)
    assert environ == {"A": "env", "B": "file"} and applied == {"B": "file"}
    assert load_local_settings(tmp_path / "missing.json", environ) == {}


def test_inputs_are_built_by_the_libraries_own_converters() -> None:
    request = http_request(
        "POST", "http://h/api/copies?x=1", {"Content-Type": "application/json", "X-Key": "k"}, {"x": "1"}, {}, b"{}"
    )
    assert (request.method, request.headers["x-key"], request.params["x"], request.get_body()) == (
        "POST",
        "k",
        "1",
        b"{}",
    )
    assert request.get_json() == {}
    now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    timer = timer_request(True, None, now)
    assert timer.past_due is True and timer.schedule_status["Next"] == now.isoformat()  # type: ignore[attr-defined]
