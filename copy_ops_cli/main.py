"""copy-ops: start, watch, list and abort copies and jobs of a copy-ops app.

The app's URL and key come from --url/--key or COPY_OPS_URL/COPY_OPS_KEY; the key is
sent as x-functions-key. Where the app knows its callers by Microsoft Entra ID (COPY_AUTH
entra), the CLI signs in for the app's audience (--audience or COPY_OPS_AUDIENCE,
api://<client id>) with azure-identity, or takes a token given (--token or
COPY_OPS_TOKEN): the token goes as Authorization, the key then only to the host's admin
API (sweep). argparse (the standard library's) reads the arguments, httpx talks HTTP,
rich draws tables and progress bars (only on a terminal). Exit status: 0 done (with
--wait or --watch: the copy or job succeeded), 1 the API refused, signing in failed, or
the copy or job ended otherwise, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console

from copy_ops_cli import display
from copy_ops_cli.client import ApiError, Client
from copy_ops_cli.signin import Credential, SignedIn, SignInError, default_credential

FINAL = {"succeeded", "failed", "aborted"}
ID = re.compile(r"[0-9a-f]+(-[0-9a-f]+)+")
POLL_SECONDS = 2.0


class Output:
    """Where results go: JSON for scripts, lines and tables for people (rich: colour and
    live bars only on a terminal)."""

    def __init__(self, stream: TextIO, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        if not self.console.is_terminal:
            # A pipe or a file has no width: rows stay whole, one line each, for grep and cut.
            self.console.width = 10_000

    def data(self, value: Any, shown: Any) -> None:
        if self.as_json:
            self.stream.write(json.dumps(value, indent=2) + "\n")
        else:
            self.console.print(shown, markup=False)


class UsageError(Exception):
    """A command line the CLI cannot turn into a request: exit status 2, one line."""


def _source(text: str, what: str = "source") -> Any:
    """A URL, or ``container/blob`` in the app's account."""
    if "://" in text:
        return text
    container, _, blob = text.partition("/")
    if not container or not blob:
        raise UsageError(
            f"{what}: {text!r} is not a blob: give container/blob (a blob of the app's storage account) "
            "or the blob's URL (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB, with a SAS if it needs one)"
        )
    return {"container": container, "blob": blob}


def _destination(text: str) -> dict[str, str]:
    container, _, blob = text.partition("/")
    if not container or not blob:
        raise UsageError(f"destination: {text!r} is not a blob: give container/blob (in the app's storage account)")
    return {"container": container, "blob": blob}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.timeout is not None:
        body["timeout_seconds"] = args.timeout
    if args.overwrite:
        body["overwrite"] = True
    if args.lease_source:
        body["lease_source"] = True
    if args.on_abort:
        body["on_abort"] = args.on_abort
    if args.engine:
        body["engine"] = args.engine
    if args.metadata:
        body["metadata"] = dict(item.split("=", 1) for item in args.metadata)
    return body


def _watch(client: Client, out: Output, path: str, job: bool, sleep: Callable[[float], None]) -> int:
    """Follow ``path`` until its state is final; 0 if it succeeded."""
    live = display.Live(out.console, job) if not out.as_json else None
    try:
        while True:
            view = client.call("GET", path)
            if live is not None:
                live.show(view)
            if view.get("state") in FINAL:
                break
            sleep(POLL_SECONDS)
    finally:
        if live is not None:
            live.stop()
    if out.as_json:
        out.data(view, None)
    return 0 if view.get("state") == "succeeded" else 1


@dataclass(frozen=True)
class Kind:
    """What differs between copies and jobs on the command line: where they live and how
    one is shown in a line or a table."""

    path: str
    plural: str
    line: Callable[[dict[str, Any]], str]
    details: Callable[[dict[str, Any], datetime], list[str]]
    rows: Callable[[Sequence[dict[str, Any]]], list[list[str]]]
    header: tuple[str, ...]
    job: bool


COPIES = Kind(
    "/api/copies", "copies", display.copy_line, display.copy_details, display.copy_rows, display.COPY_HEADER, job=False
)
JOBS = Kind("/api/jobs", "jobs", display.job_line, display.job_details, display.job_rows, display.JOB_HEADER, job=True)


def run(args: argparse.Namespace, client: Client, out: Output, sleep: Callable[[float], None]) -> int:
    kind = JOBS if args.command == "jobs" else COPIES
    if getattr(args, "id", None) is not None and not ID.fullmatch(args.id):
        # Ids are digits, hex and hyphens; anything else (a "..", a "/") could name another route.
        raise ApiError(0, f"{args.id!r} is not an operation or job id")
    command = args.job_command if args.command == "jobs" else args.command
    if command in ("start", "retry"):
        if command == "retry":
            # An ended job's failed items, run again as a new job: shown as a job started.
            view = client.call("POST", f"{kind.path}/{args.id}/retry", _job_retry(args))
        else:
            body = {**(_job_start(args) if kind is JOBS else _copy_start(args)), **_options(args)}
            view = client.call("POST", kind.path, body)
        if args.wait:
            return _watch(client, out, f"{kind.path}/{view['id']}", kind.job, sleep)
        out.data(view, kind.line(view))
        return 0
    if command == "show":
        if args.watch:
            return _watch(client, out, f"{kind.path}/{args.id}", kind.job, sleep)
        view = client.call("GET", f"{kind.path}/{args.id}")
        out.data(view, "\n".join(kind.details(view, datetime.now(UTC))))
        return 0
    if command == "ls":
        state = getattr(args, "state", None)
        query = {"limit": str(args.limit), "state": state, "continuation": args.continuation}
        page = client.call("GET", kind.path, query={name: value for name, value in query.items() if value})
        if page["items"]:
            out.data(page, display.table(kind.rows(page["items"]), kind.header))
        else:
            out.data(page, f"no {kind.plural}" + (f" in state {state}" if state else ""))
        if page.get("continuation") and not out.as_json:
            out.console.print(f"(more: --continuation {page['continuation']})", markup=False)
        return 0
    if command == "abort":
        view = client.call("POST", f"{kind.path}/{args.id}/abort")
        out.data(view, kind.line(view))
        return 0
    if command == "report":
        for part in client.parts(f"{kind.path}/{args.id}/report"):  # a large job's report comes in parts
            out.stream.write(part.decode("utf-8"))
        return 0
    if command == "whoami":
        view = client.call("GET", "/api/whoami")
        out.data(view, "\n".join(display.caller_details(view)))
        return 0
    assert command == "sweep", command
    client.call("POST", "/admin/functions/sweep", {"input": ""})
    out.data({"sweep": "started"}, "sweep started")
    return 0


def _copy_start(args: argparse.Namespace) -> dict[str, Any]:
    return {"source": _source(args.source), "destination": _destination(args.destination)}


def _job_retry(args: argparse.Namespace) -> dict[str, Any]:
    """The body of ``jobs retry``: only what was given (the app defaults the rest)."""
    body: dict[str, Any] = {}
    if args.timeout_seconds is not None:
        body["timeout_seconds"] = args.timeout_seconds
    if args.deadline is not None:
        body["deadline"] = args.deadline
    retry = {"attempts": args.attempts, "backoff_seconds": args.backoff_seconds}
    if any(value is not None for value in retry.values()):
        body["retry"] = {name: value for name, value in retry.items() if value is not None}
    if args.sas is not None:
        body["sas"] = args.sas
    if args.include_aborted:
        body["include_aborted"] = True
    return body


def _job_start(args: argparse.Namespace) -> dict[str, Any]:
    source: dict[str, Any]
    if args.manifest:
        with open(args.manifest, encoding="utf-8") as manifest:
            lines = [line.strip() for line in manifest]
        source = {"blobs": [_source(line, f"{args.manifest} line {at}") for at, line in enumerate(lines, 1) if line]}
    elif "://" in args.source:
        source = {"url": args.source}
    elif args.source.partition("/")[0]:
        container, _, prefix = args.source.partition("/")
        source = {"container": container, "prefix": prefix}
    else:
        raise UsageError(
            f"source: {args.source!r} names no container: give container/prefix (in the app's storage account), "
            "a container's URL (with a SAS that allows listing), or --manifest FILE"
        )
    container, _, prefix = args.destination.partition("/")
    if not container:
        raise UsageError(f"destination: {args.destination!r} names no container: give container/prefix")
    return {"source": source, "destination": {"container": container, "prefix": prefix}}


def _common(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes, before or after its name (as az, gh and kubectl
    take them). Only the top level sets defaults: a command's own copy sets a value only
    when given, so ``--json ls`` and ``ls --json`` mean the same."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--url", default=default(os.environ.get("COPY_OPS_URL")), help="the app's URL (COPY_OPS_URL)")
    parser.add_argument("--key", default=default(os.environ.get("COPY_OPS_KEY")), help="a function key (COPY_OPS_KEY)")
    bearer = "a bearer token for the app's Entra ID audience (COPY_OPS_TOKEN)"
    parser.add_argument("--token", default=default(os.environ.get("COPY_OPS_TOKEN")), help=bearer)
    sign_in = (
        "sign in with Microsoft Entra ID (az login, or a pipeline's identity) for the app's audience, "
        "api://<client id> (COPY_OPS_AUDIENCE)"
    )
    parser.add_argument("--audience", default=default(os.environ.get("COPY_OPS_AUDIENCE")), help=sign_in)
    parser.add_argument("--json", action="store_true", default=default(False), help="print the API's JSON, for scripts")


class _Commands:
    """``add_subparsers``, each command taking the common options too."""

    def __init__(self, parent: argparse.ArgumentParser, dest: str) -> None:
        self._commands = parent.add_subparsers(dest=dest, required=True)

    def add_parser(self, name: str, **options: Any) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = self._commands.add_parser(name, **options)
        _common(command, defaults=False)
        return command


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="copy-ops", description=__doc__.split("\n\n")[0])
    _common(main, defaults=True)
    commands = _Commands(main, "command")

    def copy_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--timeout", type=int, help="seconds until the deadline")
        command.add_argument("--overwrite", action="store_true")
        command.add_argument("--lease-source", action="store_true")
        command.add_argument("--on-abort", choices=["keep", "delete", "restore"])
        command.add_argument(
            "--engine", choices=["auto", "async", "blocks"], help="Copy Blob (async), copy-ops' blocks, or auto"
        )
        command.add_argument("--metadata", action="append", metavar="NAME=VALUE")
        command.add_argument("--wait", action="store_true", help="show progress until it ends; exit 0 if it succeeded")

    start = commands.add_parser("start", help="start a copy")
    start.add_argument("source", help="a blob URL (with its SAS), or container/blob in the app's account")
    start.add_argument("destination", help="container/blob")
    copy_options(start)
    ls = _show_and_ls(commands, "an operation", "operations, newest first")
    ls.add_argument("--state", choices=["pending", "succeeded", "failed", "aborted"])
    commands.add_parser("abort", help="abort a pending copy").add_argument("id")
    commands.add_parser("sweep", help="run the sweep now (the admin endpoint: needs the master key)")
    commands.add_parser("whoami", help="who the app takes you for: a key's holder, or you signed in with Entra ID")

    jobs = commands.add_parser("jobs", help="jobs: many blobs under one deadline")
    job_commands = _Commands(jobs, "job_command")
    job_start = job_commands.add_parser("start", help="start a job")
    job_start.add_argument("source", nargs="?", default="", help="a container URL (with a SAS), or container/prefix")
    job_start.add_argument("destination", help="container/prefix")
    job_start.add_argument("--manifest", help="a file of sources, one a line (URLs or container/blob)")
    copy_options(job_start)
    _show_and_ls(job_commands, "a job and its counts", "jobs, newest first")
    job_commands.add_parser("abort", help="abort a job").add_argument("id")
    job_commands.add_parser("report", help="the report of an ended job (JSON Lines)").add_argument("id")
    retry = job_commands.add_parser("retry", help="run an ended job's failed items again, as a new job")
    retry.add_argument("id")
    deadline = retry.add_mutually_exclusive_group()
    deadline.add_argument("--timeout-seconds", type=int, help="seconds until the new job's deadline")
    deadline.add_argument("--deadline", help="the new job's deadline, e.g. 2026-11-24T03:00:00Z")
    retry.add_argument("--attempts", type=int, help="each item's attempts at most (default: the job's)")
    retry.add_argument("--backoff-seconds", type=float, help="the first wait between attempts (default: the job's)")
    retry.add_argument("--sas", help="the SAS (query string) to read sources the job read with a SAS again")
    retry.add_argument("--include-aborted", action="store_true", help="its aborted items too")
    retry.add_argument("--wait", action="store_true", help="show progress until it ends; exit 0 if it succeeded")
    return main


def _show_and_ls(commands: _Commands, one: str, many: str) -> argparse.ArgumentParser:
    """``show ID [--watch]`` and a paged ``ls``, alike for copies and jobs; the ``ls`` parser."""
    show = commands.add_parser("show", help=one)
    show.add_argument("id")
    show.add_argument("--watch", action="store_true", help="follow it until it ends")
    ls: argparse.ArgumentParser = commands.add_parser("ls", help=many)
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--continuation", help="the next page, as the previous one named it")
    return ls


def _signed_in(args: argparse.Namespace, credential: Callable[[], Credential]) -> SignedIn | None:
    """Signing in for ``--audience``: the token is asked for as the first request goes, and
    a credential that cannot give one is said once (:class:`SignInError`), nothing sent."""
    if not args.audience:
        return None
    if args.token:
        raise UsageError("give --token or --audience (COPY_OPS_TOKEN or COPY_OPS_AUDIENCE), not both")
    return SignedIn(args.audience, credential)


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    credential: Callable[[], Credential] = default_credential,
) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if not args.url:
        stderr.write("copy-ops: the app's URL is missing: --url or COPY_OPS_URL\n")
        return 2
    client: Client | None = None
    try:
        client = Client(args.url, args.key, args.token, _signed_in(args, credential))
        return run(args, client, Output(stdout, args.json), sleep)
    except UsageError as error:
        stderr.write(f"copy-ops: {error}\n")
        return 2
    except (ApiError, SignInError) as error:
        stderr.write(f"copy-ops: {error}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if client is not None:
            client.close()
