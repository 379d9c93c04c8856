"""The walls of the code base, kept by tests rather than by hope (as h11 and httpx keep
theirs): who may import what, where Azure's words may appear, who reads the
environment, how big a room may grow, and that patterns match whole strings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = sorted(ROOT.glob("copy_ops/**/*.py"))
PRODUCT = [*PACKAGE, ROOT / "function_app.py"]
EVERYTHING = sorted(
    path
    for pattern in (
        "copy_ops/**/*.py",
        "copy_ops_cli/**/*.py",
        "devhost/**/*.py",
        "devkit/**/*.py",
        "bench/**/*.py",
        "tests/**/*.py",
        "*.py",
    )
    for path in ROOT.glob(pattern)
)
MAX_LINES = 250
# The pure core: decisions and values only, nothing that touches storage, HTTP or the clock.
PURE = {
    "core.connection",
    "core.continuation",
    "core.errors",
    "core.logtext",
    "core.names",
    "core.ncrontab",
    "core.problems",
    "core.redaction",
    "core.settings",
    "core.times",
    "core.urls",
    "copies.events",
    "copies.lifecycle",
    "copies.model",
    "copies.ports",
    "copies.request",
    "copies.sources",
    "copies.views",
    "jobs.events",
    "jobs.model",
    "jobs.ports",
    "jobs.progress",
    "jobs.request",
    "jobs.sources",
    "jobs.views",
    "observability.events",
    "work.messages",
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


@pytest.mark.parametrize("path", PRODUCT, ids=name_of)
def test_only_the_storage_adapter_imports_the_azure_sdk(path: Path) -> None:
    if name_of(path).startswith("copy_ops/storage/"):
        return
    if name_of(path) == "copy_ops/observability/monitor.py":
        # The Azure Monitor adapter: the distro, and the identity its exporter signs in with.
        assert importing(path, "azure.storage", "azure.core", "azure.eventgrid") == set()
        return
    assert not importing(path, "azure.storage", "azure.core", "azure.identity", "azure.eventgrid", "azure.monitor")


@pytest.mark.parametrize("path", PACKAGE, ids=name_of)
def test_only_the_adapters_import_azure_functions(path: Path) -> None:
    if name_of(path).startswith("copy_ops/edges/"):
        return
    assert not importing(path, "azure.functions")


def test_function_app_imports_only_azure_functions_and_the_adapters() -> None:
    allowed = {
        "azure.functions",
        "copy_ops.edges",
        "copy_ops.edges.http",
        "copy_ops.edges.http_jobs",
        "copy_ops.edges.triggers",
    }
    assert imports(ROOT / "function_app.py") <= allowed


@pytest.mark.parametrize("path", [p for p in EVERYTHING if not name_of(p).startswith("tests/")], ids=name_of)
def test_nothing_outside_tests_imports_from_tests(path: Path) -> None:
    assert not importing(path, "tests")


@pytest.mark.parametrize("path", PRODUCT, ids=name_of)
def test_only_the_composition_root_reads_the_environment(path: Path) -> None:
    if name_of(path) == "copy_ops/edges/runtime.py":
        return
    tree = parse(path)
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    calls = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert "environ" not in names and "getenv" not in names and "getenv" not in calls


@pytest.mark.parametrize(
    "path", [ROOT / "copy_ops" / f"{stem.replace('.', '/')}.py" for stem in sorted(PURE)], ids=name_of
)
def test_the_pure_core_touches_nothing_outside(path: Path) -> None:
    """Of the standard library, only what does no I/O. (Which modules of copy_ops the core
    may import, and that it imports no Azure SDK, are import-linter's contracts:
    pyproject.toml, `lint-imports` in make test; the CLI's walls too.)"""
    outside = {module.split(".")[0] for module in imports(path)} - {"copy_ops", "__future__"}
    io_free = {"dataclasses", "datetime", "enum", "typing", "collections", "re", "json", "hashlib", "uuid", "fnmatch"}
    assert outside <= io_free | {"ipaddress", "unicodedata", "urllib", "base64", "hmac"}, outside


@pytest.mark.parametrize("path", [p for p in PACKAGE if not name_of(p).startswith("copy_ops/storage/")], ids=name_of)
def test_azure_error_codes_stay_in_the_adapter(path: Path) -> None:
    strings = {node.value for node in ast.walk(parse(path)) if isinstance(node, ast.Constant)}
    assert not strings & AZURE_CODES


@pytest.mark.parametrize("path", PACKAGE, ids=name_of)
def test_rooms_stay_small_or_say_why(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    docstring = ast.get_docstring(parse(path)) or ""
    assert lines <= MAX_LINES or "Size:" in docstring, f"{lines} lines and no 'Size:' reason at the top"


@pytest.mark.parametrize("path", [*PRODUCT, *sorted(ROOT.glob("devhost/**/*.py"))], ids=name_of)
def test_patterns_match_whole_strings(path: Path) -> None:
    """``re.match`` with ``$`` accepts a trailing newline (``"dst-a\\n"``); ``fullmatch`` does not."""
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr != "match", f"{path}:{node.lineno}: use fullmatch"
            if node.func.attr == "compile" and node.args and isinstance(node.args[0], ast.Constant):
                pattern = str(node.args[0].value)
                assert not pattern.startswith("^") and not pattern.endswith("$"), f"{path}:{node.lineno}"


# -- one concurrency model: coroutines on the worker's loop, nothing that blocks it ----------

# Synchronous clients and the means to start threads or block: none of them in the product.
BLOCKING_MODULES = ("requests", "urllib3", "http.client", "urllib.request", "socket", "concurrent.futures")
THREAD_MAKERS = {"Thread", "ThreadPoolExecutor", "run_coroutine_threadsafe", "new_event_loop", "to_thread"}
# Where the SDKs keep their synchronous clients: an async client comes from an ``aio`` module.
SDK_PACKAGES = ("azure.storage", "azure.identity", "azure.eventgrid", "azure.core.pipeline.transport")
# The one synchronous credential: the Azure Monitor distro's exporter takes only a sync
# TokenCredential, and calls it from its own export thread, never on the worker's loop.
EXPORTER_CREDENTIAL = ("copy_ops/observability/monitor.py", "azure.identity.ManagedIdentityCredential")


@pytest.mark.parametrize("path", PRODUCT, ids=name_of)
def test_no_synchronous_storage_or_network_client(path: Path) -> None:
    """Every client the app builds is an SDK's async one (from an ``aio`` module) or aiohttp;
    no synchronous HTTP library, no socket of its own."""
    assert not importing(path, *BLOCKING_MODULES)
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(SDK_PACKAGES):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if not alias.name.endswith(("Client", "Credential", "Transport")) or alias.name.startswith("Aio"):
                    continue
                if (name_of(path), name) != EXPORTER_CREDENTIAL:
                    assert ".aio" in node.module, f"{name_of(path)}:{node.lineno}: {name} is synchronous"


@pytest.mark.parametrize("path", PRODUCT, ids=name_of)
def test_the_app_starts_no_thread_and_never_blocks_the_loop(path: Path) -> None:
    """No thread or private event loop of the app's own (the worker's loop runs everything)
    and no ``time.sleep``: a wait is ``await asyncio.sleep``. (OpenTelemetry's metric
    callbacks run on the exporter's thread: telemetry's lock guards against it.)"""
    tree = parse(path)
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    called = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not (attributes | called) & THREAD_MAKERS
    assert "sleep" not in {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "time"
    }


def test_every_function_of_the_app_is_a_coroutine() -> None:
    """The worker awaits an ``async def`` function on its loop (a ``def`` one goes to its
    thread pool); the real worker's own index says so too (tests/test_worker.py)."""
    tree = parse(ROOT / "function_app.py")
    decorated = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert decorated and all(isinstance(node, ast.AsyncFunctionDef) for node in decorated)
