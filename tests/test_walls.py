"""Rules of the code base that a test keeps, so a class of bug cannot come back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = sorted([*ROOT.glob("copy_ops/**/*.py"), *ROOT.glob("devhost/**/*.py"), ROOT / "function_app.py"])


def trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in PRODUCT]


@pytest.mark.parametrize(("path", "tree"), trees(), ids=lambda value: str(value) if isinstance(value, Path) else "")
def test_patterns_match_whole_strings(path: Path, tree: ast.Module) -> None:
    """``re.match`` with ``$`` accepts a trailing newline (``"dst-a\\n"``); ``fullmatch`` does not."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr != "match", f"{path}:{node.lineno}: use fullmatch"
            if node.func.attr == "compile" and node.args and isinstance(node.args[0], ast.Constant):
                pattern = str(node.args[0].value)
                assert not pattern.startswith("^") and not pattern.endswith("$"), f"{path}:{node.lineno}"
