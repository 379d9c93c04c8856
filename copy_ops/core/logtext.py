"""How counts appear in log lines: ``name=count`` pairs, sorted by name, one format for
every summary line (the sweep's, a page's, a job's, a work message's). Pure."""

from __future__ import annotations

from collections.abc import Mapping


def counts_text(counts: Mapping[str, int]) -> str:
    return " ".join(f"{name}={count}" for name, count in sorted(counts.items()))
