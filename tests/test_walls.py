"""The walls of the code base that no linter can say, one test a rule (each names every
file that breaks it): which Azure package may be imported where, where Azure's words may
appear, what the pure core may import, how big a module may grow, that patterns match whole
strings, that every client is an async one, that every function is a coroutine.

What a linter can say is the linter's (docs/testing.md lists where each wall went): the
layers, that nothing outside tests imports tests and that no test module imports another
are import-linter's contracts (pyproject.toml, ``lint-imports``); no thread, no private
loop, no ``time.sleep``, no synchronous network module and one reader of the environment
are ruff's banned-api rule (TID251, pyproject.toml)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = sorted(ROOT.glob("copy_ops/**/*.py"))
PRODUCT = [*PACKAGE, ROOT / "function_app.py"]
MAX_LINES = 250
# The pure core: decisions and values only, nothing that touches storage, HTTP or the clock.
PURE = {
    "core.callers",
    "core.connection",
    "core.continuation",
    "core.errors",
    "core.logtext",
    "core.machines",
    "core.names",
    "core.ncrontab",
    "core.policy",
    "core.policy_document",
    "core.problems",
    "core.redaction",
    "core.settings",
    "core.times",
    "core.urls",
    "core.versions",
    "copies.events",
    "copies.lifecycle",
    "copies.model",
    "copies.owners",
    "copies.permits",
    "copies.phases",
    "copies.ports",
    "copies.request",
    "copies.retry",
    "copies.sources",
    "copies.views",
    "jobs.events",
    "jobs.model",
    "jobs.moves",
    "jobs.permits",
    "jobs.phases",
    "jobs.ports",
    "jobs.progress",
    "jobs.request",
    "jobs.sources",
    "jobs.views",
    "observability.events",
    "work.messages",
    "work.seal",
}
# Azure Storage's own error codes: above the adapter, named exceptions stand for them.
AZURE_CODES = {
    "BlobAlreadyExists",
    "BlobNotFound",
    "CannotVerifyCopySource",
    "ConditionNotMet",
    "ContainerNotFound",
    "CopyIdMismatch",
    "LeaseAlreadyPresent",
    "LeaseIdMismatchWithLeaseOperation",
    "LeaseNotPresentWithLeaseOperation",
    "NoPendingCopyOperation",
    "PendingCopyOperation",
    "SnapshotsPresent",
}


def name_of(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def importing(path: Path, *prefixes: str) -> set[str]:
    return {module for module in imports(path) if module.startswith(prefixes)}


def broken(paths: list[Path], rule: Callable[[Path], str | None]) -> list[str]:
    """Each file that breaks ``rule`` (what it says of the file), by name."""
    return [f"{name_of(path)}: {said}" for path in paths if (said := rule(path))]


# Which of Azure's packages each part of the product may import (beyond import-linter's
# reach: it names an external package by its top level only, and all of these are azure).
AZURE_SDK = ("azure.storage", "azure.core", "azure.identity", "azure.eventgrid", "azure.monitor")
# The Azure Monitor adapter: the distro, and the identity its exporter signs in with.
MONITOR = ("copy_ops/observability/monitor.py", ("azure.storage", "azure.core", "azure.eventgrid"))


def azure_imports_out_of_place(path: Path) -> str | None:
    name = name_of(path)
    wrong: set[str] = set()
    if not name.startswith("copy_ops/storage/"):
        wrong |= importing(path, *(MONITOR[1] if name == MONITOR[0] else AZURE_SDK))
    if not name.startswith("copy_ops/edges/") and name != "function_app.py":
        wrong |= importing(path, "azure.functions")
    return ", ".join(sorted(wrong)) or None


def test_azure_sdks_only_in_the_storage_adapter_and_azure_functions_only_at_the_edges() -> None:
    assert not broken(PRODUCT, azure_imports_out_of_place)


def test_function_app_imports_only_azure_functions_and_the_adapters() -> None:
    allowed = {
        "azure.functions",
        "copy_ops.edges",
        "copy_ops.edges.http",
        "copy_ops.edges.http_callers",
        "copy_ops.edges.http_jobs",
        "copy_ops.edges.triggers",
    }
    assert imports(ROOT / "function_app.py") <= allowed


def outside_io_free(path: Path) -> str | None:
    outside = {module.split(".")[0] for module in imports(path)} - {"copy_ops", "__future__"}
    io_free = {"dataclasses", "datetime", "enum", "typing", "collections", "re", "json", "hashlib", "uuid", "fnmatch"}
    extra = outside - io_free - {"ipaddress", "unicodedata", "urllib", "base64", "hmac"}
    return ", ".join(sorted(extra)) or None


def test_the_pure_core_touches_nothing_outside() -> None:
    """Of the standard library, only what does no I/O. (Which modules of copy_ops the core
    may import, and that it imports no Azure SDK, are import-linter's contracts.)"""
    pure = [ROOT / "copy_ops" / f"{stem.replace('.', '/')}.py" for stem in sorted(PURE)]
    assert all(path.exists() for path in pure)
    assert not broken(pure, outside_io_free)


def azure_codes(path: Path) -> str | None:
    strings = {node.value for node in ast.walk(parse(path)) if isinstance(node, ast.Constant)}
    return ", ".join(sorted(str(code) for code in strings & AZURE_CODES)) or None


def test_azure_error_codes_stay_in_the_adapter() -> None:
    assert not broken([p for p in PACKAGE if not name_of(p).startswith("copy_ops/storage/")], azure_codes)


def too_big(path: Path) -> str | None:
    lines = len(path.read_text().splitlines())
    docstring = ast.get_docstring(parse(path)) or ""
    return f"{lines} lines and no 'Size:' reason at the top" if lines > MAX_LINES and "Size:" not in docstring else None


def test_modules_stay_small_or_say_why() -> None:
    assert not broken(PACKAGE, too_big)


def partial_patterns(path: Path) -> str | None:
    """``re.match`` with ``$`` accepts a trailing newline (``"dst-a\\n"``); ``fullmatch`` does not."""
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "match":
                return f"line {node.lineno}: use fullmatch"
            if node.func.attr == "compile" and node.args and isinstance(node.args[0], ast.Constant):
                pattern = str(node.args[0].value)
                if pattern.startswith("^") or pattern.endswith("$"):
                    return f"line {node.lineno}: anchors in a pattern; use fullmatch"
    return None


def test_patterns_match_whole_strings() -> None:
    assert not broken([*PRODUCT, *sorted(ROOT.glob("devhost/**/*.py"))], partial_patterns)


# -- one concurrency model: coroutines on the worker's loop, nothing that blocks it ----------
# (No thread, no private loop, no time.sleep, no synchronous HTTP module: ruff's banned-api.)

# Where the SDKs keep their synchronous clients: an async client comes from an ``aio`` module.
SDK_PACKAGES = ("azure.storage", "azure.identity", "azure.eventgrid", "azure.core.pipeline.transport")
# The one synchronous credential: the Azure Monitor distro's exporter takes only a sync
# TokenCredential, and calls it from its own export thread, never on the worker's loop.
EXPORTER_CREDENTIAL = ("copy_ops/observability/monitor.py", "azure.identity.ManagedIdentityCredential")


def synchronous_clients(path: Path) -> str | None:
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(SDK_PACKAGES):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if not alias.name.endswith(("Client", "Credential", "Transport")) or alias.name.startswith("Aio"):
                    continue
                if (name_of(path), name) != EXPORTER_CREDENTIAL and ".aio" not in node.module:
                    found.append(f"line {node.lineno}: {name} is synchronous")
    return ", ".join(found) or None


def test_every_sdk_client_of_the_app_is_an_async_one() -> None:
    """Every client the app builds is an SDK's async one (from an ``aio`` module) or aiohttp."""
    assert not broken(PRODUCT, synchronous_clients)


def test_every_function_of_the_app_is_a_coroutine() -> None:
    """The worker awaits an ``async def`` function on its loop (a ``def`` one goes to its
    thread pool); the real worker's own index says so too (tests/test_worker.py)."""
    tree = parse(ROOT / "function_app.py")
    decorated = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert decorated and all(isinstance(node, ast.AsyncFunctionDef) for node in decorated)


def collaborators_set_afterwards(path: Path) -> str | None:
    """Assignments into another object's attribute (``self.copies.settler.job_watch = ...``):
    a collaborator set after construction, which an unset one silently changes."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            chained = [t for t in targets if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Attribute)]
            found += [f"{ast.unparse(target)} (line {node.lineno})" for target in chained]
    return ", ".join(found) or None


def test_collaborators_are_wired_in_constructors() -> None:
    assert not broken(PRODUCT, collaborators_set_afterwards)


# The records' readers: a stored phase and history read back are no move.
RECORD_READERS = {"copy_ops/copies/model.py", "copy_ops/jobs/model.py"}


def given_by_hand(tree: ast.Module) -> list[str]:
    """Each ``phase=`` or ``history=`` given other than by a machine's ``next_phase``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                value = keyword.value
                by_table = isinstance(value, ast.Call) and ast.unparse(value.func).endswith("next_phase")
                if keyword.arg in ("phase", "history") and not by_table:
                    found.append(f"line {node.lineno}: {keyword.arg}={ast.unparse(value)}")
    return found


def phases_set_by_hand(path: Path) -> str | None:
    """A phase or a history given by hand: every move of an operation or a job is a row of
    its machine's table (``TRANSITIONS`` in copy_ops/copies/phases.py, in
    copy_ops/jobs/phases.py), made by the machine's ``moved`` (its fields passed on as
    ``**moved(...)``), which adds the move to the history. Reading a record (the two
    model.py) and a new record's default are no moves."""
    if name_of(path) in RECORD_READERS:
        return None
    return ", ".join(given_by_hand(parse(path))) or None


def test_a_phase_changes_only_by_the_transition_table() -> None:
    assert not broken(PRODUCT, phases_set_by_hand)


@pytest.mark.parametrize(
    "source",
    [
        "dataclasses.replace(job, phase=JobPhase.ENDED)",
        "dataclasses.replace(op, phase=Phase.COPYING)",
        "dataclasses.replace(job, history=(*job.history, line))",
        "Job(id=job_id, state=JobState.RUNNING, phase=JobPhase.RUNNING)",
    ],
)
def test_the_wall_finds_a_phase_or_a_history_given_by_hand(source: str) -> None:
    assert given_by_hand(ast.parse(source))
    assert not given_by_hand(ast.parse("dataclasses.replace(job, **MACHINE.moved(job.phase, job.history, e, now))"))


# The service's methods a request reaches, each scoped to its caller: with no ``caller=``
# the service takes a key's holder (an admin, who sees everything), so an HTTP handler that
# left it out would answer every caller as an admin.
CALLER_SCOPED = {"start", "get", "list", "abort", "items", "report"}


def service_calls_without_caller(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLER_SCOPED:
            target = ast.unparse(node.func.value)
            on_service = "service()" in target or target in ("jobs", "service", "service.jobs")
            if on_service and not any(keyword.arg == "caller" for keyword in node.keywords):
                found.append(f"line {node.lineno}: {ast.unparse(node.func)}(...) without caller=")
    return found


def test_every_request_reaches_the_service_as_its_caller() -> None:
    edges = sorted((ROOT / "copy_ops" / "edges").glob("http*.py"))
    assert edges
    assert not broken(edges, lambda path: ", ".join(service_calls_without_caller(parse(path))) or None)


@pytest.mark.parametrize(
    "source",
    [
        "await (await runtime.service()).get(op_id, now)",
        "await (await runtime.service()).jobs.list(limit, continuation)",
        "await jobs.report(job_id, 0)",
    ],
)
def test_the_wall_finds_a_request_that_forgot_its_caller(source: str) -> None:
    assert service_calls_without_caller(ast.parse(source))
    assert not service_calls_without_caller(ast.parse(source[:-1] + ", caller=caller)"))
