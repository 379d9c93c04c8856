"""What the CLI prints: progress bars, tables, one-line summaries. Pure functions of
their input (the terminal's width and whether it is one are passed in)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(count: float) -> str:
    """Bytes as a person reads them: 1.5 MiB."""
    for unit in UNITS:
        if abs(count) < 1024 or unit == UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def bar(done: float, total: float | None, width: int = 30) -> str:
    """``[#####.....]  50%``; without a total, no bar: the count so far."""
    if not total or total <= 0:
        return ""
    share = min(max(done / total, 0.0), 1.0)
    filled = round(share * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {share * 100:3.0f}%"


def copy_progress(view: Mapping[str, Any]) -> str:
    """One line for an operation: its state, and bytes copied of the total."""
    progress = view.get("progress") or {}
    copied, total = progress.get("bytes_copied"), progress.get("bytes_total")
    line = f"{view.get('id')} {view.get('state')}"
    if isinstance(copied, int) and isinstance(total, int) and total > 0:
        line += f" {bar(copied, total)} {size(copied)} of {size(total)}"
    return line


def job_progress(view: Mapping[str, Any]) -> str:
    """One line for a job: its state, items done of those known, bytes copied."""
    counts = view.get("counts") or {}
    items = int(counts.get("items") or 0)
    done = items - int(counts.get("pending") or 0)
    line = f"{view.get('id')} {view.get('state')} {bar(done, items)} {done}/{items} items"
    if counts.get("bytes_copied"):
        line += f", {size(int(counts['bytes_copied']))} copied"
    if counts.get("failed"):
        line += f", {counts['failed']} failed"
    if counts.get("aborted"):
        line += f", {counts['aborted']} aborted"
    return " ".join(line.split())


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Columns padded to their widest cell; the header first."""
    cells = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def copy_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for item in items:
        destination = item.get("destination") or {}
        rows.append(
            [
                str(item.get("id")),
                str(item.get("state")),
                f"{destination.get('container')}/{destination.get('blob')}",
                str(item.get("deadline") or ""),
                str(item.get("abort_reason") or (item.get("error") or {}).get("code") or ""),
            ]
        )
    return rows


COPY_HEADER = ("ID", "STATE", "DESTINATION", "DEADLINE", "REASON")


def job_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for item in items:
        counts = item.get("counts") or {}
        rows.append(
            [
                str(item.get("id")),
                str(item.get("state")),
                str(counts.get("items", "")),
                str(counts.get("failed", "")),
                str(item.get("deadline") or ""),
            ]
        )
    return rows


JOB_HEADER = ("ID", "STATE", "ITEMS", "FAILED", "DEADLINE")
