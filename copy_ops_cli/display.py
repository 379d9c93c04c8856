"""What the CLI shows, with rich: one-line summaries (pure), tables, and the live
progress of a copy or a job. On a terminal the progress is a bar redrawn in place;
otherwise (a pipe, a file, a CI log) a plain line each time it changes: no bar, no
colour, no control characters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

COPY_HEADER = ("ID", "STATE", "ATTEMPT", "DESTINATION", "DEADLINE", "REASON")
JOB_HEADER = ("ID", "STATE", "ITEMS", "FAILED", "DEADLINE")


def copy_bytes(view: Mapping[str, Any]) -> tuple[int, int | None]:
    """Bytes copied, and the total when known."""
    progress = view.get("progress") or {}
    copied, total = progress.get("bytes_copied"), progress.get("bytes_total")
    return (copied if isinstance(copied, int) else 0), (total if isinstance(total, int) and total > 0 else None)


def job_items(view: Mapping[str, Any]) -> tuple[int, int]:
    """Items done (in a final state) and items known so far."""
    counts = view.get("counts") or {}
    items = int(counts.get("items") or 0)
    return items - int(counts.get("pending") or 0), items


def copy_line(view: Mapping[str, Any]) -> str:
    """An operation in one line: its state, and bytes copied of the total when known."""
    line = f"{view.get('id')} {view.get('state')}"
    copied, total = copy_bytes(view)
    if total is not None:
        line += f" {decimal(copied)} of {decimal(total)}"
    return line


def job_line(view: Mapping[str, Any]) -> str:
    """A job in one line: its state, items done of those known, bytes copied, failures."""
    counts = view.get("counts") or {}
    done, items = job_items(view)
    parts = [f"{view.get('id')} {view.get('state')} {done}/{items} items"]
    if counts.get("bytes_copied"):
        parts.append(f"{decimal(int(counts['bytes_copied']))} copied")
    for state in ("failed", "aborted", "retried"):
        if counts.get(state):
            parts.append(f"{counts[state]} {state}")
    return ", ".join(parts)


def copy_details(view: Mapping[str, Any], now: datetime) -> list[str]:
    """An operation as ``show`` prints it: its line, then what a person asks next (how far,
    until when, why it ended, by which engine, whose), one ``name  value`` line each."""
    details: list[tuple[str, str]] = []
    copied, total = copy_bytes(view)
    if total is not None:
        details.append(("progress", f"{decimal(copied)} of {decimal(total)} ({copied * 100 // total}%)"))
    if view.get("deadline"):
        details.append(("deadline", f"{view['deadline']} ({_relative(str(view['deadline']), now)})"))
    if view.get("abort_reason"):
        details.append(("reason", str(view["abort_reason"])))
    error = view.get("error") or {}
    if error:
        details.append(("error", _error(error)))
    details += _attempt(view)
    engine = view.get("engine")
    if engine:
        blocks = view.get("blocks") or {}
        staged = f", {blocks.get('staged')} of {blocks.get('total')} blocks staged" if blocks.get("total") else ""
        details.append(("engine", f"{engine}{staged}"))
    details += _owner(view) + _machine(view)
    source = view.get("source")
    details.append(("source", source if isinstance(source, str) else _where(source)))
    details.append(("destination", _where(view.get("destination"))))
    return [copy_line(view), *_aligned(details)]


def job_details(view: Mapping[str, Any], now: datetime) -> list[str]:
    """A job as ``show`` prints it: its line, then its deadline, whose it is, its phase and
    moves, and its first failures."""
    details: list[tuple[str, str]] = []
    if view.get("deadline"):
        details.append(("deadline", f"{view['deadline']} ({_relative(str(view['deadline']), now)})"))
    if view.get("engine"):
        details.append(("engine", str(view["engine"])))
    details += _owner(view) + _machine(view)
    # A retry of another job's failures, or a job whose failures were retried.
    details += [
        (name, str(view[key]))
        for key, name in (("retry_of", "retry of"), ("retried_by", "retried by"))
        if view.get(key)
    ]
    for failure in view.get("failures") or []:
        details.append(("failed", f"{failure.get('id')}: {failure.get('code')}"))
    return [job_line(view), *_aligned(details)]


def _attempt(view: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Which attempt a copy is on, of how many at most, and the last failed one's error: said
    where there may be another attempt or was one (a copy tried once says nothing of it)."""
    attempt = view.get("attempt") or {}
    failed = attempt.get("failed") or []
    if not attempt or (attempt.get("of") == 1 and not failed):
        return []
    line = f"{attempt.get('number')} of {attempt.get('of')}"
    if attempt.get("last_error"):
        line += f"; last error: {_error(attempt['last_error'])}"
    return [("attempt", line)]


def _attempt_column(view: Mapping[str, Any]) -> str:
    """``2/3`` in a list: the attempt under way of how many at most."""
    attempt = view.get("attempt") or {}
    return f"{attempt['number']}/{attempt['of']}" if attempt.get("number") and attempt.get("of") else ""


def _error(error: Mapping[str, Any]) -> str:
    return f"{error.get('code')}: {error.get('message')}"


def _owner(view: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Whose a copy or a job is: its caller's name and object id (an app from before callers
    were recorded says nothing of it: no line)."""
    if "caller" not in view:
        return []
    caller = view["caller"] or {}
    if not caller.get("id"):
        return [("caller", "none known (a function key's holder, or from before callers)")]
    return [("caller", f"{caller['name']} ({caller['id']})" if caller.get("name") else str(caller["id"]))]


def _machine(view: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Where a copy or a job is in its machine, and each of its moves (its history): by whom,
    where a caller asked for it."""
    lines = [("phase", str(view["phase"]))] if view.get("phase") else []
    for move in view.get("history") or []:
        reason = f" ({move['reason']})" if move.get("reason") else ""
        by = f" by {move['by']}" if move.get("by") else ""
        lines.append(("moved", f"{move.get('at')} {move.get('event')} -> {move.get('phase')}{reason}{by}"))
    return lines


def caller_details(view: Mapping[str, Any]) -> list[str]:
    """``whoami``: who the app takes the caller for, then how it knows and what it holds."""
    if view.get("known_by") == "key":
        first = "the holder of a function key (an admin)"
    else:
        first = f"{view.get('name') or view.get('object_id')}, signed in with Microsoft Entra ID"
    details: list[tuple[str, str]] = []
    if view.get("object_id"):
        details.append(("object id", str(view["object_id"])))
    if view.get("tenant_id"):
        details.append(("tenant", str(view["tenant_id"])))
    details.append(("roles", ", ".join(view.get("roles") or []) or "none"))
    details.append(("groups", ", ".join(view.get("groups") or []) or "none"))
    details.append(("admin", "yes" if view.get("admin") else "no"))
    details.append(("auth", f"{view.get('auth')} (COPY_AUTH)"))
    return [first, *_aligned(details)]


def _aligned(details: Sequence[tuple[str, str]]) -> list[str]:
    width = max((len(name) for name, _ in details), default=0)
    return [f"  {name.ljust(width)}  {value}" for name, value in details]


def _where(ref: Any) -> str:
    if not isinstance(ref, Mapping):
        return str(ref)
    account = f"{ref['account']}:" if ref.get("account") else ""
    return f"{account}{ref.get('container')}/{ref.get('blob')}"


def _relative(stamp: str, now: datetime) -> str:
    """``in 5 min`` or ``passed 2 h ago``: a deadline as a person reads it."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = int((when - now).total_seconds())
    amount = abs(seconds)
    text = f"{amount} s" if amount < 120 else f"{amount // 60} min" if amount < 7200 else f"{amount // 3600} h"
    return f"in {text}" if seconds >= 0 else f"passed {text} ago"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> Table:
    """Columns padded to their widest cell, no borders: readable, and easy to cut."""
    grid = Table(*header, box=None, pad_edge=False, show_edge=False, header_style="bold")
    for row in rows:
        grid.add_row(*row)
    return grid


def copy_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for item in items:
        destination = item.get("destination") or {}
        reason = item.get("abort_reason") or (item.get("error") or {}).get("code") or ""
        where = f"{destination.get('container')}/{destination.get('blob')}"
        deadline = str(item.get("deadline") or "")
        rows.append([str(item.get("id")), str(item.get("state")), _attempt_column(item), where, deadline, reason])
    return rows


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


class Live:
    """The progress of one copy or job while it runs: rich's bar on a terminal, plain
    lines otherwise."""

    def __init__(self, console: Console, job: bool) -> None:
        self._console = console
        self._job = job
        self._last = ""
        self._progress: Progress | None = None
        self._task: Any = None
        if console.is_terminal:
            amount = MofNCompleteColumn() if job else _KnownBytes()
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), amount, TimeElapsedColumn(), console=console
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=None)

    def show(self, view: Mapping[str, Any]) -> None:
        line = job_line(view) if self._job else copy_line(view)
        if self._progress is None:
            if line != self._last:
                self._console.print(line, highlight=False, markup=False, soft_wrap=True)
                self._last = line
            return
        done, total = job_items(view) if self._job else copy_bytes(view)
        known = bool(total)
        if view.get("state") == "succeeded" and not total:
            done, total = 1, 1  # ended at once, its size not reported: a full bar, no invented bytes
        description = f"{view.get('id')} {view.get('state')}"
        if self._job and (view.get("counts") or {}).get("bytes_copied"):
            description += f" ({decimal(int(view['counts']['bytes_copied']))})"
        self._progress.update(self._task, description=description, completed=done, total=total or None, known=known)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class _KnownBytes(DownloadColumn):
    """Bytes copied of the total, only when the API reported them."""

    def render(self, task: Task) -> Text:
        return super().render(task) if task.fields.get("known") else Text("")
