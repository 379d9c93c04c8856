"""Azure's answers as test data (tests/data/azure-answers), by fact id.

``FACTS``: what Azure answered in the Azure SDK teams' recordings of real accounts
(recorded.json, the shared start, and recorded-more.json), each with the repository, path and
commit it came from. ``DOCUMENTED``: what Azure's REST reference documents and no recording
holds (documented.json), each with its reference page and the reading of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ANSWERS = Path(__file__).parent.parent / "data" / "azure-answers"


def load(*paths: Path) -> dict[str, dict[str, Any]]:
    facts: dict[str, dict[str, Any]] = {}
    for path in paths:
        for fact in json.loads(path.read_text(encoding="utf-8"))["facts"]:
            assert fact["id"] not in facts, f"{fact['id']} is kept twice"
            facts[fact["id"]] = fact
    return facts


FACTS = load(*sorted(ANSWERS.glob("recorded*.json")))
DOCUMENTED = load(ANSWERS / "documented.json")
assert not FACTS.keys() & DOCUMENTED.keys(), "an answer is either recorded or documented"
