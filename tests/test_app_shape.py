"""The function app as the host indexes it: functions, routes, methods, auth levels,
bindings, the timer's schedule, and the settings the files must carry."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest

from copy_ops.core.connection import IDENTITY_SUFFIXES
from copy_ops.core.ncrontab import Schedule
from copy_ops.core.settings import Settings
from copy_ops.edges import runtime
from devkit.app import ROOT, load_function_app, sample_settings
from devkit.worker import run
from tests.support.env import RecordingEnv
from tests.support.functions import EXPECTED


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in sample_settings().items():
        monkeypatch.setenv(name, value)
    module = load_function_app()
    yield module.app
    run(runtime.reset())


def text(value: Any) -> str:
    return str(getattr(value, "value", value))


def bindings(fn: Any) -> list[dict[str, Any]]:
    return [binding.get_dict_repr() for binding in fn.get_bindings()]


def test_exactly_the_expected_functions(app: Any) -> None:
    assert sorted(fn.get_function_name() for fn in app.get_functions()) == sorted(
        [*EXPECTED, "sweep", "work", "work_poisoned"]
    )


def test_http_routes_methods_and_auth_levels(app: Any) -> None:
    for fn in app.get_functions():
        name = fn.get_function_name()
        if name in ("sweep", "work", "work_poisoned"):
            continue
        trigger = fn.get_trigger().get_dict_repr()
        assert (trigger["route"], sorted(text(m) for m in trigger["methods"])) == EXPECTED[name]
        assert text(trigger["authLevel"]) == "function"
        assert {b["type"] for b in bindings(fn)} == {"httpTrigger", "http"}


def test_every_binding_names_a_parameter_of_its_function(app: Any) -> None:
    for fn in app.get_functions():
        parameters = set(inspect.signature(fn.get_user_function()).parameters)
        names = {b["name"] for b in bindings(fn) if b["name"] != "$return"}
        assert names == parameters, fn.get_function_name()


def test_the_work_queue_trigger_reads_the_apps_own_queue(app: Any) -> None:
    functions = {fn.get_function_name(): fn for fn in app.get_functions()}
    trigger = functions["work"].get_trigger().get_dict_repr()
    assert trigger["type"] == "queueTrigger"
    assert (trigger["queueName"], trigger["connection"]) == (sample_settings()["COPY_WORK_QUEUE"], "COPY_STORAGE")
    # Its poison queue, where the host moves a message after maxDequeueCount, has a trigger too.
    trigger = functions["work_poisoned"].get_trigger().get_dict_repr()
    assert trigger["type"] == "queueTrigger"
    assert (trigger["queueName"], trigger["connection"]) == (
        f"{sample_settings()['COPY_WORK_QUEUE']}-poison",
        "COPY_STORAGE",
    )


def test_the_timer_schedule_resolves_to_valid_ncrontab(app: Any) -> None:
    [timer] = [fn for fn in app.get_functions() if fn.get_function_name() == "sweep"]
    trigger = timer.get_trigger().get_dict_repr()
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == sample_settings()["COPY_SWEEP_SCHEDULE"]
    Schedule.parse(trigger["schedule"])


def test_the_sample_settings_carry_every_setting_the_code_reads() -> None:
    env = RecordingEnv(sample_settings())
    Settings.from_env(env)
    assert env.read, "the settings object read nothing"
    # The identity forms are for Azure (deploy.md); locally the emulator takes a connection string.
    identity = {name for name in env.read if name.endswith(IDENTITY_SUFFIXES)}
    missing = env.read - identity - set(sample_settings())
    assert not missing, f"local.settings.sample.json lacks {sorted(missing)}"
    readme = (ROOT / "README.md").read_text()
    undocumented = {name for name in env.read if f"`{name}`" not in readme}
    assert not undocumented, f"README's settings table lacks {sorted(undocumented)}"
    assert {"COPY_SWEEP_SCHEDULE", "COPY_STORAGE", "AzureWebJobsStorage"} <= env.read


def test_host_json_is_a_v2_host_with_a_timeout_above_the_sweep_budget() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    hours, minutes, seconds = (int(part) for part in host["functionTimeout"].split(":"))
    timeout = hours * 3600 + minutes * 60 + seconds
    budget = Settings.from_env(sample_settings()).sweep_budget_seconds
    assert budget < timeout


def test_the_openapi_document_matches_the_registered_routes(app: Any) -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert document == json.loads((ROOT / "copy_ops" / "openapi.json").read_text())
    documented = {(path.lstrip("/"), method.upper()) for path, item in document["paths"].items() for method in item}
    registered = {
        (trigger["route"], text(method))
        for fn in app.get_functions()
        for trigger in [fn.get_trigger().get_dict_repr()]
        if trigger["type"] == "httpTrigger"
        for method in trigger["methods"]
    }
    assert documented == registered
    assert {op["operationId"] for item in document["paths"].values() for op in item.values()} == set(EXPECTED)
