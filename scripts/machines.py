"""Write each machine's diagram and table into its page under docs/machines/, from the
code's own table: ``.venv/bin/python scripts/machines.py``. tests/test_phases.py and
tests/test_job_phases.py fail when a page and its table differ."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from copy_ops.copies import phases  # noqa: E402  (after the path: run as a script)
from copy_ops.core.machines import Machine  # noqa: E402
from copy_ops.jobs import phases as job_phases  # noqa: E402

BEGIN, END = "<!-- generated from the code's table: do not edit below -->", "<!-- generated: end -->"


def generated(mermaid: str, table: str) -> str:
    return f"{BEGIN}\n\n```mermaid\n{mermaid}\n```\n\n{table}\n\n{END}"


# Each machine's page, by the name of its file under docs/machines/.
PAGES: dict[str, Machine[Any, Any]] = {"copy.md": phases.MACHINE, "job.md": job_phases.MACHINE}


def write(page: Path, mermaid: str, table: str) -> None:
    text = page.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    page.write_text(head + generated(mermaid, table) + tail, encoding="utf-8")


if __name__ == "__main__":
    for name, machine in PAGES.items():
        write(ROOT / "docs" / "machines" / name, machine.mermaid(), machine.table())
