"""Why most of the suite runs on one interpreter (docs/testing.md): between Python 3.11 and
3.13 the app differs only in azure-functions (1.x below 3.13, 2.x from it, with the 3.13
worker library), which the edges use. So the pure suite, the edges and the real worker run
on both (marked ``interpreter`` and ``py313``), storage and the system once, on 3.11. These
tests fail the day that stops being true: another package resolved differently for the two,
a requirement of its own for one of them, or the product asking which interpreter it runs on.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from devkit import PROJECT_ROOT

# What may differ: azure-functions (its version), and the worker library of 3.13 with what it
# alone requires.
FUNCTIONS = {"azure-functions", "azure-functions-runtime", "azurefunctions-extensions-base"}
# The installers an environment was made with (venv's pip and setuptools, uv in .venv).
INSTALLERS = {"pip", "setuptools", "wheel", "uv"}
ENVIRONMENTS = {"3.11": PROJECT_ROOT / ".venv", "3.13": PROJECT_ROOT / ".venv313"}
LIST = (
    "import importlib.metadata as m, json;"
    "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))"
)


def installed(environment: Path) -> dict[str, str]:
    python = environment / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: scripts/setup.sh makes it")
    found = subprocess.run([str(python), "-c", LIST], capture_output=True, text=True, timeout=60, check=True)
    versions: dict[str, str] = json.loads(found.stdout)
    return {name: version for name, version in versions.items() if name not in INSTALLERS}


@pytest.mark.system
def test_both_environments_hold_the_same_packages_but_azure_functions() -> None:
    old, new = (installed(environment) for environment in ENVIRONMENTS.values())
    differ = {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    assert differ <= FUNCTIONS, {name: (old.get(name), new.get(name)) for name in sorted(differ - FUNCTIONS)}
    assert old["azure-functions"].startswith("1.") and new["azure-functions"].startswith("2.")


def test_only_azure_functions_is_required_by_interpreter() -> None:
    """An environment marker in the app's requirements is a package that differs by
    interpreter: azure-functions alone has one."""
    marked = [
        line.split(";")[0].strip()
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if ";" in line and not line.lstrip().startswith("#")
    ]
    assert marked and all(requirement.startswith("azure-functions") for requirement in marked), marked


def asks_for_the_interpreter(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in {("sys", "version_info"), ("sys", "version"), ("sys", "hexversion")}:
                return True
            if node.value.id == "platform" and node.attr.startswith("python_"):
                return True
    return False


def test_the_product_never_asks_which_interpreter_it_runs_on() -> None:
    product = [*sorted((PROJECT_ROOT / "copy_ops").glob("**/*.py")), PROJECT_ROOT / "function_app.py"]
    asking = [str(path.relative_to(PROJECT_ROOT)) for path in product if asks_for_the_interpreter(path)]
    assert not asking
