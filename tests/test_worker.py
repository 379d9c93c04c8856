"""The real Azure Functions Python worker indexes function_app.py (issue: the real worker).

On Python 3.13 and later the host runs Python apps with ``azure-functions-runtime``; this
runs that library's own metadata loading on our app, in the Python 3.13 environment
(``.venv313``, made by ``scripts/setup-313.sh``), and checks what the host would receive:
every function, its trigger, route, methods, auth level, the timer's schedule. With no
storage setting at all: a missing setting must not make the functions vanish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.copies.model import State
from copy_ops.core.settings import Settings
from copy_ops.work.messages import Settle, encode
from devkit import PROJECT_ROOT, PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs
from tests.support.functions import EXPECTED
from tests.support.memory import sealed_by
from tests.support.partner import Partner
from tests.support.requests import start

pytestmark = [pytest.mark.system, pytest.mark.py313]

# This interpreter when it is 3.13 (the suite's 3.13 run), else the 3.13 environment's.
PYTHON_313 = Path(sys.executable) if sys.version_info[:2] == (3, 13) else PROJECT_ROOT / ".venv313" / "bin" / "python"
# The routes as the function app declares them (the same table the indexing test uses).
HTTP = EXPECTED


def index_with_worker(**settings: str) -> dict[str, dict[str, Any]]:
    if not PYTHON_313.exists():
        pytest.fail(f"{PYTHON_313} is missing: scripts/setup-313.sh makes it (it needs Python 3.13)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPY_", "AzureWebJobs"))}
    result = subprocess.run(
        [str(PYTHON_313), "-m", "devkit.worker_index", str(PROJECT_ROOT)],
        cwd=PROJECT_ROOT,
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {function["name"]: function for function in json.loads(result.stdout)}


def trigger(function: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [raw for raw in function["raw_bindings"] if raw["direction"] == "IN"]
    assert len(found) == 1
    return found[0]


def test_the_worker_indexes_every_function_without_any_setting() -> None:
    functions = index_with_worker()
    assert set(functions) == {*HTTP, "sweep", "work", "work_poisoned"}
    for name, (route, methods) in HTTP.items():
        binding = trigger(functions[name])
        assert (binding["type"], binding["route"], binding["methods"]) == ("httpTrigger", route, methods)
        assert binding["authLevel"] == "FUNCTION"
        assert functions[name]["bindings"]["$return"]["type"] == "http"
        assert functions[name]["properties"] == {"worker_indexed": "True"}
    sweep = trigger(functions["sweep"])
    assert (sweep["type"], sweep["schedule"], sweep["runOnStartup"]) == ("timerTrigger", "0 */1 * * * *", False)
    # No setting at all: the work queue on the host's own storage, as the templates give it.
    work = trigger(functions["work"])
    assert (work["type"], work["queueName"], work["connection"]) == (
        "queueTrigger",
        "copy-ops-work",
        "AzureWebJobsStorage",
    )
    poisoned = trigger(functions["work_poisoned"])
    assert (poisoned["type"], poisoned["queueName"], poisoned["connection"]) == (
        "queueTrigger",
        "copy-ops-work-poison",
        "AzureWebJobsStorage",
    )


@pytest.mark.parametrize(("mode", "level"), [("entra", "ANONYMOUS"), ("both", "FUNCTION"), ("not-a-mode", "FUNCTION")])
def test_the_worker_indexes_the_auth_level_copy_auth_asks_for(mode: str, level: str) -> None:
    """In entra, App Service Authentication admits callers and the host asks no key; a bad
    mode indexes as keys (the requests then answer 503 naming COPY_AUTH)."""
    functions = index_with_worker(COPY_AUTH=mode)
    assert {trigger(functions[name])["authLevel"] for name in HTTP} == {level}


def test_the_timer_takes_its_schedule_from_the_setting() -> None:
    functions = index_with_worker(COPY_SWEEP_SCHEDULE="*/10 * * * * *", COPY_STORAGE="UseDevelopmentStorage=true")
    assert trigger(functions["sweep"])["schedule"] == "*/10 * * * * *"
    assert trigger(functions["work"])["connection"] == "COPY_STORAGE"


# -- invoked through the real worker library: async, and every log line tied to its invocation

SWEPT = 50
BATCH = 10


def invoke_with_worker(invocations: list[dict[str, Any]], **settings: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPY_", "AzureWebJobs"))}
    result = subprocess.run(
        [str(PYTHON_313), "-m", "devkit.worker_invoke", str(PROJECT_ROOT)],
        cwd=PROJECT_ROOT,
        env={**env, **settings},
        input=json.dumps(invocations),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return answers


def test_the_worker_reports_every_function_as_async() -> None:
    functions = index_with_worker()
    assert functions and {name: function["is_async"] for name, function in functions.items()} == dict.fromkeys(
        functions, True
    )


def test_a_sweep_and_a_work_message_log_every_line_under_their_invocation(
    service: AppService, settings: Settings, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    """The sweep settles 50 operations concurrently, a work message a batch of 10, both
    invoked by the real worker library: every record the app writes meanwhile (each
    operation's own lines, written by its own task) carries that invocation's id as the
    worker reads it (no thread of the app's own would)."""
    partner.put("a.bin", b"payload")
    proxy.pending_copies = True
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    body = partial(partner.body, blobs.dst, timeout_seconds=60)  # another account's: pending
    ops = [start(service, body(dest_name=f"{index}.bin"), long_ago).operation for index in range(SWEPT + BATCH)]
    assert all(op.state is State.PENDING for op in ops)
    # The work message settles a batch of them first; the sweep then finds the other 50.
    batch = [op.id for op in ops[SWEPT:]]
    now = datetime.now(UTC).isoformat()
    timer = {"Schedule": {"AdjustForDST": True}, "IsPastDue": False, "ScheduleStatus": {"Last": now, "Next": now}}
    settle = sealed_by(service, encode(Settle(tuple(batch))))  # as the app's sweep sends it
    message = {"body": settle, "id": "message-1", "dequeue_count": 1, "inserted": now}
    work_answer, sweep_answer = invoke_with_worker(
        [
            {"function": "work", "invocation_id": "invocation-work", "message": message},
            {"function": "sweep", "invocation_id": "invocation-sweep", "timer": timer},
        ],
        COPY_STORAGE=proxy.connection_string,
        COPY_LEDGER_CONTAINER=settings.ledger_container,
        COPY_ALLOWED_SOURCE_HOSTS="127.0.0.1:*",
        COPY_WORK_QUEUE=f"work-{blobs.src[-10:]}",
        COPY_SWEEP_CONCURRENCY="16",
    )
    for answer, invocation, aborted in (
        (sweep_answer, "invocation-sweep", SWEPT),
        (work_answer, "invocation-work", BATCH),
    ):
        assert answer["ok"], answer["error"]
        ours = [record for record in answer["records"] if record["logger"].startswith("copy_ops")]
        assert sum(record["message"].startswith("copy_aborted ") for record in ours) == aborted, ours[-5:]
        untied = [record for record in ours if record["invocation_id"] != invocation]
        assert not untied, untied[:5]
    summary = [r["message"] for r in sweep_answer["records"] if r["message"].startswith("sweep_summary")]
    assert len(summary) == 1 and f"aborted={SWEPT}" in summary[0], summary
    assert all(run(service.ledger.get(op.id)).state is State.ABORTED for op in ops)
