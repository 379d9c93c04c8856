"""Every cross-reference in the docs (README.md and docs/**/*.md) names something that
still exists: one test a rule, each naming every reference it finds broken, by page and line.

- paths: a repository file or folder in backticks or in prose (``copies/settle.py``,
  ``tests/test_walls.py``, ``devkit/``), and a Markdown link's target, exist;
- modules and their symbols: ``copy_ops.jobs.progress.item_id`` (and ``devkit.``,
  ``devhost.``, ``bench.``), ``storage/errors.bounded_wait``, a short module name of the
  code (``progress.IN_FLIGHT``; a stem two modules share passes when either has it) and a
  class's attribute (``Settings.from_env``) import and resolve;
- names: a bare identifier of the code's shape (``Settler``, ``announce_owed``,
  ``IN_FLIGHT``) is a word of the code (a name or a string, not a comment), a name a test
  module defines at its top level (``every_kind``), or a builtin;
- settings: a ``COPY_*`` app setting is read by the settings (core/settings.py,
  core/connection.py, edges/runtime.py); ``COPY_OPS_*`` and ``COPY_STANDIN_*`` are the
  tools' own, read by scripts/, the CLI or the tests;
- log events: each event of docs/operations.md's table starts a line the package logs;
- telemetry: a ``copyops.`` metric, span, attribute or event type is one the package names;
- the map: design.md's tree lists existing modules, and every module of a folder it maps;
- sizes: design.md's paragraph on the ``Size:`` wall names exactly the modules with a reason;
- pages: every page under docs/ is linked from design.md, the map (a page nobody links is lost);
- sections: a section a page is cited by (``docs/jobs.md, "Limits"``, in the docs and in the
  code's comments) is a heading, or a paragraph's bold lead, of that page.

What a rule lets pass on purpose (a ledger's blob name, a file of the history) is listed
below with its reason, and must still be cited and still not exist. Pure file reading and
imports: no Azurite, about a second. ``test_each_rule_fails_on_a_broken_reference`` feeds
each rule a synthetic page (or pages), sound references then one broken one: the rule names
it alone."""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# The code whose modules, names and strings the docs may cite.
CODE = ("copy_ops", "copy_ops_cli", "devkit", "devhost", "bench", "tests/support")
PACKAGES = ("copy_ops", "devkit", "devhost", "bench")
EXTENSIONS = ("py", "md", "json", "bicep", "sh", "toml", "txt", "yaml")
# Not walked for the repository's files: made by tools, or ignored by git.
UNWALKED = {".git", "node_modules", "__pycache__", ".hypothesis", ".schemathesis", ".azurite", "bench/results"}
# Cited on purpose, and not files of the repository (each still cited: checked below).
NOT_FILES = {
    # The ledger's blobs and a job's blob names (docs/ledger.md, docs/jobs.md, docs/api.md).
    "idempotency/": "the ledger's idempotency claims",
    "fanout/in-flight.json": "the ledger's document of batches in flight",
    "chunks/": "the ledger's manifest chunk digests",
    "ab/": "a job's source prefix, as an example",
    "d/": "a job's source prefix, as an example",
    "incoming/hello.txt": "a blob of the examples",
    # Made on a developer's machine, ignored by git.
    "local.settings.json": "made from local.settings.sample.json",
    ".azurite/": "Azurite's data, made by make run",
    # The history: what a file used to be.
    "copy_ops/pool.py": "performance.md: replaced by copy_ops/aio/bounded.py",
    "copy_ops/storage.py": "decisions.md's deviations: the adapter is a package",
    "storage.py": "decisions.md's deviations: the adapter is a package",
}
# Cited on purpose, and not names of the code (each still cited: checked below).
NOT_NAMES = {
    "timout_seconds": "the misspelt field the API refuses, as an example",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "the Functions host's setting, not the app's",
    "copyops.job.completed": "the spec's example of a job's event type, from which decisions.md deviates",
}
# The settings' readers: an app setting the docs name is a string of one of these.
SETTINGS = ("copy_ops/core/settings.py", "copy_ops/core/connection.py", "copy_ops/edges/runtime.py")
# The tools' own variables (not the app's), and where they are read.
TOOLS = ("COPY_OPS_", "COPY_STANDIN_")
TOOL_FILES = ("scripts/*.sh", "Makefile", "copy_ops_cli/*.py", "tests/conftest.py", "tests/support/*.py")


@dataclass(frozen=True)
class Doc:
    name: str
    text: str


@dataclass(frozen=True)
class Ref:
    doc: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: `{self.text}`"


def docs() -> list[Doc]:
    return [Doc(path.relative_to(ROOT).as_posix(), path.read_text()) for path in DOCS]


# -- reading the Markdown ------------------------------------------------------------------

FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
URL = re.compile(r"[a-z]+://\S+")
PROSE_PATH = re.compile(rf"(?<![\w./-])(?:[\w-]+/)+[\w.-]*\w\.(?:{'|'.join(EXTENSIONS)})\b")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def blank(match: re.Match[str]) -> str:
    """The match's text as spaces (its newlines kept): what follows keeps its line."""
    return re.sub(r"[^\n]", " ", match.group(0))


def prose(text: str) -> str:
    """The text without its fenced blocks (a shell session, a JSON body, the map)."""
    return FENCE.sub(blank, text)


def found(doc: Doc, pattern: re.Pattern[str], text: str | None = None) -> Iterator[Ref]:
    text = prose(doc.text) if text is None else text
    for match in pattern.finditer(text):
        yield Ref(doc.name, text.count("\n", 0, match.start()) + 1, match.group(1 if pattern.groups else 0))


def spans(doc: Doc) -> Iterator[Ref]:
    """Each code span outside the fenced blocks, a call's ``()`` dropped."""
    for ref in found(doc, SPAN):
        yield Ref(ref.doc, ref.line, ref.text.strip().removesuffix("()"))


# -- what the repository holds -------------------------------------------------------------


@cache
def repository() -> frozenset[str]:
    """Every file and folder of the repository (folders with a trailing ``/``)."""
    held: set[str] = set()
    for folder, subfolders, files in os.walk(ROOT):
        base = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if base == "." else f"{base}/"
        subfolders[:] = [
            name
            for name in subfolders
            if name not in UNWALKED
            and f"{prefix}{name}" not in UNWALKED
            and not name.startswith(".venv")
            and not name.endswith(("_cache", ".egg-info"))
        ]
        held |= {f"{prefix}{name}/" for name in subfolders} | {f"{prefix}{name}" for name in files}
    return frozenset(held)


@cache
def basenames() -> frozenset[str]:
    return frozenset(path.rstrip("/").rsplit("/", 1)[-1] for path in repository())


def is_held(path: str, where: str = "") -> bool:
    """A path of the repository: from its root or the package's (``copies/settle.py``), or,
    a bare name, anywhere in it (``worker.py``); ``where`` first, for a link's target."""
    stem = path.rstrip("/")
    if "/" not in stem and not where:
        return stem in basenames()
    bases = [where] if where else ["", "copy_ops/"]
    return any(os.path.normpath(base + stem) in stripped() for base in bases)


@cache
def stripped() -> frozenset[str]:
    return frozenset(path.rstrip("/") for path in repository())


def python_files() -> list[Path]:
    return [path for folder in CODE for path in sorted((ROOT / folder).rglob("*.py"))] + [ROOT / "function_app.py"]


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@cache
def read(path: Path) -> tuple[frozenset[str], tuple[str, ...]]:
    """A module's names (defined or used: not its comments) and its strings (constants, and
    an f-string's literal pieces), from one walk of its tree."""
    names: set[str] = {path.stem}
    texts: list[str] = []
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names |= set((node.asname or node.name).split("."))
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
    return frozenset(names), tuple(texts)


def strings(path: Path) -> tuple[str, ...]:
    return read(path)[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules_by_stem() -> dict[str, list[str]]:
    """Each short module name of the code (``progress``, ``storage``) and its modules."""
    found_: dict[str, list[str]] = {}
    for path in python_files():
        name = module_name(path)
        found_.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return found_


@cache
def objects() -> dict[str, list[str]]:
    """Each class or object defined at a module's top level (``Settings``, function_app's
    ``app``), and the modules that define it."""
    found_: dict[str, list[str]] = {}
    for path in python_files():
        for node in parsed(path).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            named = [target.id for target in targets if isinstance(target, ast.Name)]
            for name in [node.name] if isinstance(node, ast.ClassDef) else named:
                found_.setdefault(name, []).append(module_name(path))
    return found_


@cache
def words() -> frozenset[str]:
    """Every name of the code and every identifier in its strings (comments left out), and
    each name a test module defines at its top level (a recipe names ``every_kind``)."""
    held: set[str] = set()
    for path in python_files():
        names, texts = read(path)
        held |= names
        held |= set(IDENTIFIER.findall("\n".join(texts)))
    tests = sorted((ROOT / "tests").glob("test_*.py"))
    held |= {path.stem for path in tests}
    held |= {name for path in tests for name in top_level(path)}
    configs = [ROOT / name for name in ("copy_ops/openapi.json", "host.json", "local.settings.sample.json")]
    for config in [*configs, *ROOT.glob("infra/**/*.bicep")]:
        held |= set(IDENTIFIER.findall(config.read_text()))
    return frozenset(held)


def top_level(path: Path) -> Iterator[str]:
    """The functions, classes and names a module defines at its top level."""
    for node in parsed(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            yield from (target.id for target in targets if isinstance(target, ast.Name))


def has(owner: object, name: str) -> bool:
    """An attribute, or a dataclass's field (which has none until an instance sets it)."""
    if hasattr(owner, name):
        return True
    fields = getattr(owner, "__dataclass_fields__", {})
    annotated = [getattr(klass, "__annotations__", {}) for klass in getattr(owner, "__mro__", ())]
    return name in fields or any(name in notes for notes in annotated)


def resolve(dotted: str) -> str | None:
    """What is wrong with a dotted reference (its longest importable module, then its
    attributes), or None when it resolves."""
    parts = dotted.split(".")
    module: ModuleType | None = None
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name) and exc.name.startswith(parts[0]):
                continue
            raise
        break
    if module is None:
        return f"no module {parts[0]}"
    owner: object = module
    for attribute in parts[end:]:
        if not has(owner, attribute):
            return f"{getattr(owner, '__name__', owner)!s} has no {attribute}"
        owner = getattr(owner, attribute, None)
    return None


# -- the rules: each takes the docs and names every broken reference --------------------


def paths_missing(pages: list[Doc]) -> list[str]:
    """Paths in code spans and in prose, and links' targets, that the repository lacks."""
    broken = []
    for doc in pages:
        for ref in spans(doc):
            text = ref.text
            path_like = re.fullmatch(r"[\w.-]+(?:/[\w.-]+)*/?", text) and ".." not in text
            a_path = path_like and (text.endswith("/") or text.rsplit(".", 1)[-1] in EXTENSIONS)
            if a_path and text not in NOT_FILES and not is_held(text):
                broken.append(str(ref))
        # A link's target is read below, from its page's folder; the rest of the prose from the root.
        text = URL.sub(blank, SPAN.sub(blank, LINK.sub(blank, prose(doc.text))))
        broken += [str(ref) for ref in found(doc, PROSE_PATH, text) if not is_held(ref.text)]
        where = f"{Path(doc.name).parent.as_posix()}/"
        for ref in found(doc, LINK):
            target = ref.text.split("#", 1)[0]
            local = target and not URL.match(target) and not target.startswith("mailto:")
            if local and not is_held(target, where):
                broken.append(str(ref))
    return broken


@cache
def code_folders() -> frozenset[str]:
    """The folders a ``folder/module.symbol`` reference may start with: the code's and the
    package's own (``storage/errors.bounded_wait``, ``tests/support/waiting.until``)."""
    tops = {folder.split("/")[0] for folder in CODE}
    return frozenset(tops | {path.name for path in (ROOT / "copy_ops").iterdir() if path.is_dir()})


def dotted_unresolved(pages: list[Doc]) -> list[str]:
    """``copy_ops.x.y`` (and devkit., devhost., bench.) and ``folder/module.symbol``."""
    broken = []
    for ref in (ref for doc in pages for ref in spans(doc)):
        dotted = None
        if re.fullmatch(rf"(?:{'|'.join(PACKAGES)})(?:\.\w+)*", ref.text):
            dotted = ref.text
        elif match := re.fullmatch(r"((\w+)(?:/\w+)+)\.(\w+(?:\.\w+)*)", ref.text):
            path, top, symbol = match.groups()
            if symbol not in EXTENSIONS and top in code_folders():
                module = path if f"{top}/" in repository() else f"copy_ops/{path}"
                if f"{module}.py" in repository():
                    dotted = f"{module.replace('/', '.')}.{symbol}"
                else:
                    broken.append(f"{ref}: no {module}.py")
        if dotted is not None and (said := resolve(dotted)):
            broken.append(f"{ref}: {said}")
    return broken


@cache
def request_field_paths() -> frozenset[str]:
    """The fields within a start request's fields (``retry.attempts``), from the API document."""
    schemas = json.loads((ROOT / "copy_ops" / "openapi.json").read_text(encoding="utf-8"))["components"]["schemas"]
    return frozenset(
        f"{name}.{inner}"
        for schema in ("StartRequest", "JobStartRequest")
        for name, field in schemas[schema]["properties"].items()
        for inner in field.get("properties", {})
    )


def short_unresolved(pages: list[Doc]) -> list[str]:
    """``module.symbol`` by a short module name of the code, ``Class.attribute``: resolved in
    any module of that name (a stem two modules share passes when either has it)."""
    broken = []
    for ref in (ref for doc in pages for ref in spans(doc)):
        if not re.fullmatch(r"\w+(?:\.\w+)+", ref.text) or ref.text.startswith(PACKAGES):
            continue
        if ref.text.rsplit(".", 1)[-1] in EXTENSIONS or ref.text.split(".")[0] in sys.stdlib_module_names:
            continue  # a file (the paths rule's), or the standard library's (``http.client``)
        if ref.text in request_field_paths():
            continue  # a request's field within a field (``retry.attempts``), as a 400 names it
        head, rest = ref.text.split(".", 1)
        owners = [*modules_by_stem().get(head, ()), *(f"{m}.{head}" for m in objects().get(head, ()))]
        if owners and all(resolve(f"{owner}.{rest}") for owner in owners):
            broken.append(f"{ref}: not in {', '.join(owners)}")
    return broken


# Names of the code's shape: Capitalized or CamelCase, snake_case, UPPER_CASE, and a
# connection's identity forms (``AzureWebJobsStorage__clientId``).
NAME_SHAPES = re.compile(
    r"[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)*|_?[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[A-Z][A-Z0-9]*_[A-Z0-9_]+|\w+__\w+"
)


def names_unknown(pages: list[Doc]) -> list[str]:
    """Bare identifiers of the code's shape that the code never names (nor Python's
    builtins). ``COPY_*`` settings are the next rule's."""
    known = words() | set(dir(builtins)) | NOT_NAMES.keys()
    broken = []
    for ref in (ref for doc in pages for ref in spans(doc)):
        if NAME_SHAPES.fullmatch(ref.text) and not ref.text.startswith("COPY_"):
            head, *suffixes = ref.text.split("__")
            if head not in known or any(f"__{suffix}" not in known for suffix in suffixes):
                broken.append(str(ref))
    return broken


@cache
def app_settings() -> frozenset[str]:
    return frozenset(name for path in SETTINGS for text in strings(ROOT / path) for name in SETTING.findall(text))


@cache
def tool_text() -> str:
    return "\n".join(path.read_text() for pattern in TOOL_FILES for path in sorted(ROOT.glob(pattern)))


SETTING = re.compile(r"\bCOPY_[A-Z0-9_]*[A-Z0-9](?:__[A-Za-z]+)?\b")


def settings_unread(pages: list[Doc]) -> list[str]:
    """Every ``COPY_*`` name in a page (in code spans, prose or fenced blocks)."""
    from copy_ops.core.connection import IDENTITY_SUFFIXES

    broken = []
    for ref in (ref for doc in pages for ref in found(doc, SETTING, doc.text)):
        name, _, suffix = ref.text.partition("__")
        if ref.text.startswith(TOOLS):
            read = re.search(rf"\b{ref.text}\b", tool_text()) is not None
        else:
            read = name in app_settings() and (not suffix or f"__{suffix}" in IDENTITY_SUFFIXES)
        if not read:
            broken.append(str(ref))
    return broken


@cache
def logged_first_words() -> frozenset[str]:
    """The first word of each string the package logs (a log line's event name)."""
    return frozenset(
        match.group(0)
        for path in sorted((ROOT / "copy_ops").rglob("*.py"))
        for text in strings(path)
        if (match := re.match(r"[a-z]+(?:_[a-z]+)+(?= |$)", text))
    )


def events_unlogged(pages: list[Doc]) -> list[str]:
    """The events of a "Log events" table (its first column) that the package never logs."""
    broken = []
    for doc in pages:
        section = re.search(r"^## Log events\n(.*?)(?=^## |\Z)", prose(doc.text), re.DOTALL | re.MULTILINE)
        if section is None:
            continue
        offset = doc.text.count("\n", 0, section.start(1))
        for number, line in enumerate(section.group(1).splitlines(), start=offset + 1):
            cells = line.split("|")
            if len(cells) < 3 or set(cells[1].strip()) <= {"-", " "} or cells[1].strip() == "event":
                continue
            for event in SPAN.findall(cells[1]):
                if re.fullmatch(r"[a-z]+(?:_[a-z]+)+", event) and event not in logged_first_words():
                    broken.append(f"{doc.name}:{number}: `{event}`")
    return broken


def event_types() -> set[str]:
    """The CloudEvent types the package builds: ``copyops.{kind}.{final state}``."""
    from copy_ops.copies.model import State
    from copy_ops.jobs.model import JobState

    final = [("copy", state) for state in State if state.is_final] + [("job", s) for s in JobState if s.is_final]
    return {f"copyops.{kind}.{state.value}" for kind, state in final}


def telemetry_unknown(pages: list[Doc]) -> list[str]:
    """Metric, span, attribute and event type names (``copyops.sweep.due``) the package never
    names: each is one of its strings, or an event type it builds."""
    package = {text for path in sorted((ROOT / "copy_ops").rglob("*.py")) for text in strings(path)}
    known = package | event_types() | NOT_NAMES.keys()
    refs = (ref for doc in pages for ref in spans(doc))
    return [str(ref) for ref in refs if re.fullmatch(r"copyops\.\w+(?:\.\w+)*", ref.text) and ref.text not in known]


MAP_FOLDER = re.compile(r"^(\S+(?:, \S+)*)(?: \*)?(?:\s{2,}|$)")
MAP_MODULES = re.compile(r"^  (\w+\.py(?: \*)?(?:, \w+\.py(?: \*)?)*)\s{2,}")


def map_differs(pages: list[Doc]) -> list[str]:
    """The map (the fenced block under "## Map"): its folders and modules exist, and it lists
    every module of each copy_ops/ folder it maps (``__init__.py`` aside)."""
    broken = []
    for doc in pages:
        section = re.search(r"^## Map\n.*?^```\n(.*?)^```", doc.text, re.DOTALL | re.MULTILINE)
        if section is None:
            continue
        offset = doc.text.count("\n", 0, section.start(1))
        folder, listed = "", set()
        for number, line in enumerate(section.group(1).splitlines(), start=offset + 1):
            if header := MAP_FOLDER.match(line):
                for path in header.group(1).split(", "):
                    folder = path if path.endswith("/") else ""
                    if path not in repository():
                        broken.append(f"{doc.name}:{number}: {path}")
            elif modules := MAP_MODULES.match(line):
                for module in modules.group(1).replace(" *", "").split(", "):
                    listed.add(folder + module)
                    if folder + module not in repository():
                        broken.append(f"{doc.name}:{number}: {folder}{module}")
        mapped = {path.rsplit("/", 1)[0] for path in listed if path.startswith("copy_ops/")}
        for path in sorted(repository()):
            module = path.endswith(".py") and not path.endswith("__init__.py")
            if module and path.rsplit("/", 1)[0] in mapped and path not in listed:
                broken.append(f"{doc.name}: the map leaves out {path}")
    return broken


def size_reasons_differ(pages: list[Doc]) -> list[str]:
    """The paragraph on the ``Size:`` wall names exactly the modules with a ``Size:`` reason."""
    broken = []
    for doc in pages:
        bullet = re.search(r"^\* [^\n]*`Size:` reason.*?(?=^\* |^$)", prose(doc.text), re.DOTALL | re.MULTILINE)
        if bullet is None:
            continue
        named = {f"copy_ops/{path}" for path in SPAN.findall(bullet.group(0)) if path.endswith(".py")}
        reasons = {
            path.relative_to(ROOT).as_posix()
            for path in (ROOT / "copy_ops").rglob("*.py")
            if "Size:" in (ast.get_docstring(parsed(path)) or "")
        }
        line = doc.text.count("\n", 0, bullet.start()) + 1
        broken += [f"{doc.name}:{line}: names {path}, with no Size: reason" for path in sorted(named - reasons)]
        broken += [f"{doc.name}:{line}: leaves out {path}, with a Size: reason" for path in sorted(reasons - named)]
    return broken


def pages_unlinked(pages: list[Doc]) -> list[str]:
    """Every page in the map's folder and below (docs/**/*.md) is linked from the map (the
    page with "## Map", design.md): a page nobody links is lost."""
    broken = []
    for doc in (doc for doc in pages if "\n## Map\n" in f"\n{doc.text}"):
        folder = Path(doc.name).parent.as_posix()
        targets = {os.path.normpath(f"{folder}/{ref.text.split('#', 1)[0]}") for ref in found(doc, LINK)}
        for page in pages:
            under = page.name.startswith(f"{folder}/") and page.name.endswith(".md")
            if under and page.name != doc.name and page.name not in targets:
                broken.append(f"{page.name}: not linked from {doc.name}")
    return broken


# A page cited with a section's name: ``docs/jobs.md, "Limits"``, ``[trust.md](trust.md),
# "The work queue, a trust boundary"``, ``docs/api.md "Errors"`` (the name may wrap a line).
SECTION_CITED = re.compile(r'([\w./-]+\.md)(?:`|\]\([^)\s]+\)|\))*,?\s*"([^"]{1,120})"')
HEADING = re.compile(r"^#+ (.+)$|\*\*(.+?)\*\*", re.MULTILINE | re.DOTALL)


def squeezed(text: str) -> str:
    return " ".join(text.replace("`", "").split()).lower()


def sections_missing(pages: list[Doc]) -> list[str]:
    """A section cited by its name after its page names a heading of that page, or a
    paragraph's bold lead, in part (``"Deviations"``: "Deviations from the spec, on purpose").
    The page is found from the citing page's folder, else from the root; a page that is
    not there is the paths rule's."""
    texts = {doc.name: doc.text for doc in docs()} | {doc.name: doc.text for doc in pages}
    broken = []
    for doc in pages:
        folder, text = Path(doc.name).parent.as_posix(), prose(doc.text)
        for match in SECTION_CITED.finditer(text):
            page, title = match.groups()
            cited = next((name for name in (os.path.normpath(f"{folder}/{page}"), page) if name in texts), None)
            heads = [squeezed(a or b) for a, b in HEADING.findall(prose(texts[cited]))] if cited else []
            if cited and not any(squeezed(title) in head for head in heads):
                line = text.count("\n", 0, match.start()) + 1
                broken.append(f"{doc.name}:{line}: {page}, {' '.join(title.split())!r}: no such section in {cited}")
    return broken


def code_comments() -> list[Doc]:
    """The code's files, as pages: their comments and docstrings cite the docs' sections too."""
    return [Doc(path.relative_to(ROOT).as_posix(), path.read_text()) for path in python_files()]


# -- the tests -------------------------------------------------------------------------------

RULES: dict[str, Callable[[list[Doc]], list[str]]] = {
    "paths": paths_missing,
    "dotted": dotted_unresolved,
    "short": short_unresolved,
    "names": names_unknown,
    "settings": settings_unread,
    "events": events_unlogged,
    "telemetry": telemetry_unknown,
    "map": map_differs,
    "size": size_reasons_differ,
    "pages": pages_unlinked,
    "sections": sections_missing,
}


@pytest.mark.parametrize("rule", RULES)
def test_every_reference_in_the_docs_resolves(rule: str) -> None:
    broken = RULES[rule](docs())
    assert not broken, f"{len(broken)} broken:\n" + "\n".join(broken)


def test_the_code_cites_sections_that_exist() -> None:
    broken = sections_missing(code_comments())
    assert not broken, f"{len(broken)} broken:\n" + "\n".join(broken)


def test_what_the_rules_let_pass_is_still_cited_and_still_not_the_code() -> None:
    cited = {ref.text for doc in docs() for ref in spans(doc)}
    assert not [path for path in NOT_FILES if path not in cited or is_held(path)]
    assert not [name for name in NOT_NAMES if name not in cited or name in words()]


def test_the_docs_cite_enough_to_check() -> None:
    """The rules read what they should: a rule that matches nothing would pass forever."""
    pages = docs()
    refs = [ref.text for doc in pages for ref in spans(doc)]
    assert sum(1 for text in refs if text.endswith((".py", "/"))) > 100
    assert sum(1 for text in refs if text.startswith("copy_ops.")) >= 1
    assert sum(1 for doc in pages for _ in found(doc, SETTING, doc.text)) > 50
    texts = {doc.name: doc.text for doc in pages}
    assert "## Log events\n" in texts["docs/operations.md"] and "## Map\n" in texts["docs/design.md"]
    assert "`Size:` reason" in texts["docs/design.md"]
    assert sum(1 for doc in pages if doc.name.startswith("docs/")) > 10  # the pages the map links
    assert sum(len(SECTION_CITED.findall(prose(doc.text))) for doc in [*pages, *code_comments()]) > 10


# A page per rule and form: its sound references pass, and the one broken reference after
# them is named, alone. The sound ones are every form each rule reads.
SOUND = {
    "paths": "`copy_ops/jobs/listing.py`, `copies/settle.py`, `devkit/`, `worker.py`, tests/test_walls.py, "
    "[map](docs/design.md), [top](#layout)",
    "dotted": "`copy_ops.jobs.progress.item_id`, `copy_ops.copies.model.Operation.abort_requested_at`, "
    "`storage/errors.bounded_wait`, `tests/support/waiting.until`",
    "short": "`progress.IN_FLIGHT`, `Settings.from_env`, `model.Operation`, `runtime.service()`, `http.client`",
    "names": "`announce_owed`, `CopyRequest`, `Settler`, `IN_FLIGHT`, `RuntimeWarning`, "
    "`AzureWebJobsStorage__clientId`",
    "settings": "`COPY_ENGINE`, COPY_STORAGE__clientId, `COPY_OPS_URL`, `COPY_STANDIN_RATE`",
    "events": "## Log events\n\n| event | level |\n| --- | --- |\n| `copy_recorded`, `sweep_summary` | INFO |\n",
    "telemetry": "`copyops.sweep.due`, `copyops.job_id`, `copyops.settle`, `copyops.copy.aborted`, "
    "`copyops.job.failed`",
    "map": "## Map\n\n```\ncopy_ops/aio/  how\n  bounded.py  a\n  races.py *, clock.py  b\n",
    "size": "* no module is over 250 lines without a `Size:` reason: `copies/lifecycle.py`, `copies/model.py`, "
    "`copies/block_engine.py`, `copies/start.py`, `copies/block_lifecycle.py`, `core/settings.py`, `work/messages.py`, "
    "`jobs/settle.py`, `jobs/model.py`, `jobs/records.py`",
    # Pages of their own, each starting at its marker line.
    "pages": "<!-- page: synthetic/design.md -->\n## Map\n\n[the ledger](ledger.md), [one](machines/copy.md#top)\n"
    "<!-- page: synthetic/ledger.md -->\n# The ledger\n<!-- page: synthetic/machines/copy.md -->\n# A machine\n",
    "sections": 'docs/design.md, "Deviations"; `docs/jobs.md`, "Limits"; [trust.md](docs/trust.md), "The work\n'
    'queue, a trust boundary"; docs/api.md "Errors"; README.md, "Layout"; [ledger](docs/ledger.md), "Idempotency"\n',
}
BROKEN = [
    ("paths", "`copy_ops/storage/loop.py`"),
    ("paths", "`jobs/mover.py`"),
    ("paths", "`pool.py`"),
    ("paths", "`devkit/gone/`"),
    ("paths", "as copies/loop.py says"),
    ("paths", "[api](api.md)"),
    ("dotted", "`copy_ops.jobs.progress.nothing`"),
    ("dotted", "`copy_ops.storage.loop`"),
    ("dotted", "`storage/loop.run`"),
    ("dotted", "`storage/errors.nothing`"),
    ("short", "`progress.NOT_IN_FLIGHT`"),
    ("short", "`Settings.from_nothing`"),
    ("short", "`model.Nothing`"),
    ("names", "`SettlerOfOld`"),
    ("names", "`announce_owing`"),
    ("names", "`NOT_IN_FLIGHT`"),
    ("settings", "`COPY_ENGIN`"),
    ("settings", "COPY_STORAGE__nothing"),
    ("settings", "`COPY_OPS_NOTHING`"),
    ("events", "| `copy_lost` | INFO |"),
    ("telemetry", "`copyops.sweep.late`"),
    ("telemetry", "`copyops.copy.pending`"),
    ("map", "  loop.py  d\n"),
    ("size", ", `jobs/listing.py`"),
    ("pages", "<!-- page: synthetic/lost.md -->\n# Nobody links it\n"),
    ("sections", 'docs/jobs.md, "The queue of old"'),
]


@pytest.mark.parametrize(("rule", "wrong"), BROKEN, ids=[f"{rule}:{wrong.strip()}" for rule, wrong in BROKEN])
def test_each_rule_fails_on_a_broken_reference(rule: str, wrong: str) -> None:
    closing = "```\n" if rule == "map" else "\n"
    assert RULES[rule](synthetic(SOUND[rule] + closing)) == []
    said = RULES[rule](synthetic(SOUND[rule] + wrong + closing))
    assert len(said) == 1 and said[0].startswith("synthetic"), said


def synthetic(text: str) -> list[Doc]:
    """A synthetic page, ``synthetic.md``; or pages, each from its marker line on."""
    parts = re.split(r"^<!-- page: (\S+) -->\n", text, flags=re.MULTILINE)
    named = [Doc(name, body) for name, body in zip(parts[1::2], parts[2::2], strict=True)]
    return ([Doc("synthetic.md", parts[0])] if parts[0].strip() else []) + named


def test_every_rule_is_shown_to_fail() -> None:
    assert {rule for rule, _ in BROKEN} == set(RULES) == set(SOUND)
