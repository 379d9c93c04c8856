"""The suite's tiers by cost, as registered markers (pyproject.toml), and the checks that
keep each test in its tier.

- ``unit``: pure and service logic in process, on fakes: seconds for all (make test-fast).
- ``storage``: in process against Azurite and the stand-in (tests/conftest.py starts them).
- ``system``: processes of their own (development hosts, the real worker, make run).

A test marked ``system`` says so itself; one that is not is ``storage`` when it asks for
Azurite (through any fixture), else ``unit``. Beside the tiers, what depends on the
interpreter (docs/testing.md): ``interpreter`` runs on Python 3.13 as well as 3.11 (every
unit test is such a test), ``py313`` only on 3.13, where the Functions worker library is.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

TIERS = ("unit", "storage", "system")
# A fixture that only a test of storage or of the system may ask for.
AZURITE = "azurite_ports"
# What uses azure.functions, the one package that differs between the interpreters (1.x
# below 3.13, 2.x from it): the edges, and function_app.py loaded through them. A test
# module importing any of these, or a test asking for the app's handlers, depends on it.
EDGES = ("azure.functions", "copy_ops.edges", "devkit.app", "function_app")
HANDLERS = frozenset({"handlers", "handlers_by_credential"})

# The tier of the test now running: a process of its own is started by system tests only.
running: list[str] = []


def classify(items: list[pytest.Item]) -> None:
    """Give each item its tier's marker, and ``interpreter`` where it depends on it."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        named = [tier for tier in TIERS if item.get_closest_marker(tier) is not None]
        if len(named) > 1:
            raise pytest.UsageError(f"{item.nodeid}: in tiers {named}; a test is in one")
        tier = named[0] if named else ("storage" if AZURITE in fixtures else "unit")
        if tier == "unit" and AZURITE in fixtures:
            raise pytest.UsageError(f"{item.nodeid}: marked unit, but asks for Azurite")
        if not named:
            item.add_marker(tier)
        if tier == "unit" or fixtures & HANDLERS or uses_the_edges(Path(str(item.path))):
            item.add_marker("interpreter")


@cache
def uses_the_edges(path: Path) -> bool:
    """Whether the test module imports the edges (anywhere in it, a function's body too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        if any(name == edge or name.startswith(f"{edge}.") for name in names for edge in EDGES):
            return True
    return False


def tier_of(item: pytest.Item) -> str:
    return next(tier for tier in TIERS if item.get_closest_marker(tier) is not None)


def require_system(what: str) -> None:
    """Called where a test starts a process of its own: only a system test may."""
    if running and running[-1] != "system":
        raise AssertionError(f"{what} starts a process: mark the test system (tests/support/tiers.py)")
