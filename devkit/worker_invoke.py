"""python -m devkit.worker_invoke APP_DIR < invocations.json: invoke the app's functions
through the real Python worker library, and say which invocation each log record carries.

``azure-functions-runtime`` (Python 3.13) indexes the app (:mod:`devkit.worker_index`) and
then runs each invocation through its own entry point, ``invocation_request_native``: it
converts the trigger's input with the library's converters, awaits an ``async def``
function on this event loop (or runs a ``def`` one in its thread pool) and sets its
``invocation_id_cv`` for the invocation's context. Every log record emitted meanwhile is
captured with the invocation id as the worker reads it when it ships a log line (that
context variable, at the moment of the record): a record written on a thread the app
started itself would carry none.

Input (stdin): a JSON list of ``{"function", "invocation_id", "timer": {...}}`` or
``{"function", "invocation_id", "message": {"body", "id", "dequeue_count", "inserted"}}``.
Output (stdout): a JSON list, per invocation, of whether it succeeded, its error, and its
records (logger, message, invocation id seen, thread name).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from devkit.worker_index import Message, load


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        from azure_functions_runtime import invocation_id_cv

        self.records.append(
            {
                "logger": record.name,
                "message": record.getMessage()[:500],
                "invocation_id": invocation_id_cv.get(),
                "thread": threading.current_thread().name,
            }
        )


def _json(value: Any) -> Message:
    return Message(json=json.dumps(value))


def inputs(invocation: dict[str, Any]) -> tuple[str, Message, dict[str, Message]]:
    """The trigger's parameter name, its data and its metadata, as the host sends them."""
    if "timer" in invocation:
        return "timer", _json(invocation["timer"]), {}
    message = invocation["message"]
    metadata = {
        "Id": Message(string=message["id"]),
        "PopReceipt": Message(string="pop"),
        "DequeueCount": _json(message.get("dequeue_count", 1)),
        "InsertionTime": _json(message["inserted"]),
    }
    return "message", Message(string=message["body"]), metadata


async def invoke_all(app_dir: Path, invocations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import azure_functions_runtime
    from azure_functions_runtime.bindings.datumdef import Datum
    from azure_functions_runtime.native_invocation import invocation_request_native

    ids = {meta.name: meta.function_id for meta in load(app_dir)}
    azure_functions_runtime.start_threadpool_executor()
    captured = Captured()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(captured)
    results = []
    try:
        for invocation in invocations:
            captured.records = []
            name, data, metadata = inputs(invocation)
            ok, _, _, error, _ = await invocation_request_native(
                invocation["invocation_id"],
                ids[invocation["function"]],
                [(name, Datum.from_typed_data(data))],
                {key: Datum.from_typed_data(value) for key, value in metadata.items()},
            )
            results.append({"ok": bool(ok), "error": error, "records": captured.records})
    finally:
        root.removeHandler(captured)
        from copy_ops.edges import runtime

        await runtime.close()
        azure_functions_runtime.stop_threadpool_executor()
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    app_dir = Path(args[0] if args else ".").resolve()
    invocations = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(invoke_all(app_dir, invocations))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
