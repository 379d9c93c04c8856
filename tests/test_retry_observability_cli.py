"""The CLI's ``show`` and ``ls`` of a copy's attempts (issue 32, item 3): the views are the
service's own (:func:`~copy_ops.copies.views.operation_view` of a copy retried on the
in-memory storage), handed to the CLI by a client that answers as the API would."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from copy_ops.copies.model import Operation
from copy_ops.copies.views import operation_view
from copy_ops_cli.main import Output, parser, run
from devkit.worker import run as run_async
from tests.support.retry_memory import SERVER_FAULT, T0, World, fail_attempt


class Api:
    """The API's answers for one copy: its view, and a page listing it."""

    def __init__(self, view: dict[str, Any]) -> None:
        self.view = view

    def call(self, method: str, path: str, body: object = None, query: dict[str, str] | None = None) -> object:
        assert method == "GET"
        return self.view if path == f"/api/copies/{self.view['id']}" else {"items": [self.view], "continuation": None}


def cli(view: dict[str, Any], *argv: str) -> list[str]:
    out = io.StringIO()
    args = parser().parse_args(["--url", "http://app", *argv])
    assert run(args, Api(view), Output(out, as_json=False), lambda seconds: None) == 0  # type: ignore[arg-type]
    return [line.rstrip() for line in out.getvalue().splitlines()]


def view_of(world: World, op: Operation) -> dict[str, Any]:
    return operation_view(run_async(world.service.ledger.get(op.id)), None)


def test_show_says_the_attempt_its_last_error_and_each_move_of_a_retried_copy() -> None:
    world = World()
    op = world.start(retry={"attempts": 3, "backoff_seconds": 0})
    fail_attempt(world, op, T0 + timedelta(seconds=20))
    view = view_of(world, op)
    waiting = cli(view, "show", op.id)
    assert f"  attempt      1 of 3; last error: copy_failed: {SERVER_FAULT}" in waiting
    started, failed = (move["at"] for move in view["history"])
    assert waiting[waiting.index("  phase        retrying") + 1 :][:2] == [
        f"  moved        {started} started -> copying",
        f"  moved        {failed} attempt_failed -> retrying (attempt 1 of 3: copy_failed: {SERVER_FAULT})",
    ]
    world.settle(op, world.due(op))
    again = cli(view_of(world, op), "show", op.id)
    assert f"  attempt      2 of 3; last error: copy_failed: {SERVER_FAULT}" in again
    moves = [line.split()[2:5] for line in again if line.startswith("  moved")]
    assert moves == [
        ["started", "->", "copying"],
        ["attempt_failed", "->", "retrying"],
        ["retried", "->", "retrying"],
        ["started", "->", "copying"],
    ]
    header, row = cli(view_of(world, op), "ls")
    assert header.split() == ["ID", "STATE", "ATTEMPT", "DESTINATION", "DEADLINE", "REASON"]
    assert row.split()[:4] == [op.id, "pending", "2/3", "dst/a.bin"]


def test_a_copy_tried_once_says_nothing_of_attempts() -> None:
    world = World()
    op = world.start(retry={"attempts": 1})
    shown = cli(view_of(world, op), "show", op.id)
    assert not [line for line in shown if line.lstrip().startswith("attempt")]
    assert cli(view_of(world, op), "ls")[1].split()[2] == "1/1"
