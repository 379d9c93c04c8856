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
from typing import Any

import pytest

from devkit import PROJECT_ROOT
from tests.test_app_shape import EXPECTED

PYTHON_313 = PROJECT_ROOT / ".venv313" / "bin" / "python"
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
    assert set(functions) == {*HTTP, "sweep", "work"}
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


def test_the_timer_takes_its_schedule_from_the_setting() -> None:
    functions = index_with_worker(COPY_SWEEP_SCHEDULE="*/10 * * * * *", COPY_STORAGE="UseDevelopmentStorage=true")
    assert trigger(functions["sweep"])["schedule"] == "*/10 * * * * *"
    assert trigger(functions["work"])["connection"] == "COPY_STORAGE"
