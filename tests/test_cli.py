"""The copy-ops CLI: what it prints (pure, table-driven), and every command against the
development host over real HTTP, the installed console script included."""

from __future__ import annotations

import fcntl
import io
import json
import os
import select
import struct
import subprocess
import sys
import termios
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyte
import pytest
from rich.console import Console

from copy_ops_cli import display
from copy_ops_cli.client import problem_line
from copy_ops_cli.main import Output, main, parser, run
from devkit import PendingCopyProxy
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess
from tests.support.partner import Partner
from tests.support.queues import FAST_QUEUES

# The console script of the interpreter running the tests (.venv's, or .venv313's).
CONSOLE_SCRIPT = Path(sys.executable).parent / "copy-ops"


@pytest.mark.parametrize(
    ("status", "body", "line"),
    [
        (
            400,
            b'{"title": "Invalid request", "detail": "2 problems", "errors": '
            b'[{"field": "destination.blob", "message": "must not contain .."}, '
            b'{"field": "timeout_seconds", "message": "must be at least 1"}]}',
            "400 Invalid request: destination.blob: must not contain ..; timeout_seconds: must be at least 1",
        ),
        (
            400,
            b'{"title": "Invalid request", "detail": "source.blob: must be set", "errors": '
            b'[{"field": "source.blob", "message": "must be set"}, '
            b'{"field": "source.blob", "message": "must be set"}]}',
            "400 Invalid request: source.blob: must be set",
        ),
        (404, b'{"title": "Not found", "detail": "no operation \'x\'"}', "404 Not found: no operation 'x'"),
        (502, b"<html>bad gateway</html>", "502: <html>bad gateway</html>"),
        (503, b"", "503"),
    ],
)
def test_problems_are_one_readable_line(status: int, body: bytes, line: str) -> None:
    assert problem_line(status, body) == line


@pytest.mark.parametrize(
    ("view", "line"),
    [
        ({"id": "i", "state": "pending", "progress": None}, "i pending"),
        (
            {"id": "i", "state": "pending", "progress": {"bytes_copied": 500, "bytes_total": 2000}},
            "i pending 500 bytes of 2.0 kB",
        ),
        ({"id": "i", "state": "succeeded", "progress": {"bytes_copied": 0, "bytes_total": 0}}, "i succeeded"),
    ],
)
def test_a_copy_in_one_line(view: dict[str, object], line: str) -> None:
    assert display.copy_line(view) == line


@pytest.mark.parametrize(
    ("counts", "line"),
    [
        ({}, "j running 0/0 items"),
        ({"items": 4, "pending": 1, "failed": 1, "bytes_copied": 3000}, "j running 3/4 items, 3.0 kB copied, 1 failed"),
        ({"items": 2, "pending": 0, "aborted": 2}, "j running 2/2 items, 2 aborted"),
    ],
)
def test_a_job_in_one_line(counts: dict[str, int], line: str) -> None:
    assert display.job_line({"id": "j", "state": "running", "counts": counts}) == line


def test_tables_pad_their_columns_without_borders_off_a_terminal() -> None:
    stream = io.StringIO()
    Console(file=stream, width=80).print(display.table([["a", "bbb"], ["cccc", "d"]], ["X", "Y"]))
    assert [line.rstrip() for line in stream.getvalue().splitlines()] == ["X     Y", "a     bbb", "cccc  d"]
    assert "\x1b" not in stream.getvalue()  # not a terminal: no colour, no control characters


# -- against the development host ----------------------------------------------------------


@pytest.fixture(scope="module")
def host(_proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    started = DevHostProcess(
        env={
            "COPY_STORAGE": _proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_WORK_QUEUE": f"work-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": "* * * * * *",
            "COPY_FIRST_CHECK_SECONDS": "1",
            # A report in parts from 101 items on (16 parts): the CLI follows their links.
            "COPY_JOB_REPORT_PART": "100",
        },
        host_json=FAST_QUEUES,
    )
    yield started
    started.stop()


def cli(host: DevHostProcess, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--url", host.url, *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.system
def test_start_wait_show_and_the_console_script(host: DevHostProcess, blobs: Blobs) -> None:
    blobs.put(blobs.src, "a.bin", b"x" * 2048)
    code, out, err = cli(host, "start", f"{blobs.src}/a.bin", f"{blobs.dst}/a.bin", "--wait")
    assert (code, err) == (0, "")
    assert "succeeded" in out and "\r" not in out and "\x1b" not in out  # not a terminal: plain lines
    # The installed console script, as an operator runs it, with the URL from the environment.
    listed = subprocess.run(
        [str(CONSOLE_SCRIPT), "--json", "ls", "--state", "succeeded"],
        env={"COPY_OPS_URL": host.url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    [item] = [item for item in page["items"] if item["destination"]["container"] == blobs.dst]
    code, out, _ = cli(host, "show", item["id"])
    assert code == 0 and out.startswith(f"{item['id']} succeeded")


@pytest.mark.system
def test_a_pending_copy_listed_aborted_and_watched(
    host: DevHostProcess, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    source = partner.put("p.bin", b"x")  # another account's, on Copy Blob: pending, as on Azure
    proxy.pending_copies = True
    code, out, _ = cli(host, "--json", "start", source, f"{blobs.dst}/p.bin", "--timeout", "600", "--engine", "async")
    view = json.loads(out)
    assert code == 0 and view["state"] == "pending"
    code, out, _ = cli(host, "ls", "--state", "pending")
    assert code == 0 and out.splitlines()[0].split() == ["ID", "STATE", "ATTEMPT", "DESTINATION", "DEADLINE", "REASON"]
    assert any(line.startswith(view["id"]) for line in out.splitlines())
    code, out, _ = cli(host, "abort", view["id"])
    assert code == 0 and out.startswith(f"{view['id']} aborted")
    code, out, _ = cli(host, "show", view["id"], "--watch")
    assert code == 1 and "aborted" in out  # it ended, but not as succeeded


@pytest.mark.system
def test_refusals_are_one_line_naming_the_field_and_exit_non_zero(host: DevHostProcess, blobs: Blobs) -> None:
    code, out, err = cli(host, "start", f"{blobs.src}/a.bin", f"{blobs.dst}/../escape")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("copy-ops: 400 ") and "destination.blob" in err
    code, _, err = cli(host, "show", "9999999999999-00000000")
    assert code == 1 and "404" in err
    for bad in ("..", "../jobs", "x/../../admin", "%2e%2e"):
        code, out, err = cli(host, "show", bad)
        assert (code, out) == (1, "") and "is not an operation or job id" in err
    unreachable = cli_at("http://127.0.0.1:9", "ls")
    assert unreachable[0] == 1 and "cannot reach" in unreachable[2]
    assert cli_at("ftp://example", "ls")[0] == 1


def test_the_url_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COPY_OPS_URL", raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert main(["ls"], stdout=out, stderr=err) == 2
    assert "COPY_OPS_URL" in err.getvalue()
    assert main(["frobnicate"], stdout=out, stderr=err) == 2  # argparse's own refusal


def cli_at(url: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--url", url, *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.system
def test_a_job_started_watched_to_its_end_and_reported(host: DevHostProcess, blobs: Blobs) -> None:
    for index in range(5):
        blobs.put(blobs.src, f"drop/{index}.bin", b"x" * 10)
    code, out, err = cli(host, "jobs", "start", f"{blobs.src}/drop/", f"{blobs.dst}/copied/", "--wait")
    assert (code, err) == (0, "")
    # Not a terminal: a plain line each time it changed, no bar; the last one its end.
    assert out.splitlines()[-1].endswith("succeeded 5/5 items, 50 bytes copied") and "━" not in out
    job_id = out.split()[0]
    code, out, _ = cli(host, "jobs", "ls")
    assert code == 0 and job_id in out
    code, out, _ = cli(host, "jobs", "report", job_id)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 5 and {line["state"] for line in lines} == {"succeeded"}
    code, _, err = cli(host, "jobs", "abort", job_id)
    assert code == 1 and err.startswith("copy-ops: 409")


@pytest.mark.system
def test_a_report_in_parts_is_printed_whole(host: DevHostProcess, blobs: Blobs) -> None:
    for index in range(130):
        blobs.put(blobs.src, f"many/{index:03d}.bin", b"x")
    code, out, err = cli(host, "jobs", "start", f"{blobs.src}/many/", f"{blobs.dst}/many/", "--wait")
    assert (code, err) == (0, ""), out
    job_id = out.split()[0]
    code, out, _ = cli(host, "--json", "jobs", "show", job_id)
    assert code == 0 and json.loads(out)["report_parts"] == 16
    code, out, _ = cli(host, "jobs", "report", job_id)
    names = sorted(json.loads(line)["destination"]["blob"] for line in out.splitlines())
    assert code == 0 and names == [f"many/{index:03d}.bin" for index in range(130)]


def run_in_terminal(argv: list[str], env: dict[str, str], columns: int = 100, rows: int = 12) -> pyte.Screen:
    """Run ``argv`` on a pseudo-terminal of that size and return the screen as a person
    would see it when the command has exited (a VT100 emulator reads what it wrote)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(screen)
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                raise AssertionError("the command wrote nothing for 60 s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal closed, the command has exited
                break
            if not data:
                break
            stream.feed(data)
    finally:
        os.close(master)
        process.wait(30)
    screen.exit_code = process.returncode  # type: ignore[attr-defined]
    return screen


@pytest.mark.system
def test_the_progress_bar_on_a_real_terminal(
    host: DevHostProcess, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    source = partner.put("t.bin", b"x" * 2000)  # another account's, on Copy Blob: pending
    proxy.pending_copies = True
    finisher = threading.Timer(3.0, lambda: proxy.finish(blobs.dst, "t.bin"))
    finisher.start()
    try:
        screen = run_in_terminal(
            [str(CONSOLE_SCRIPT), "start", source, f"{blobs.dst}/t.bin", "--wait", "--engine", "async"],
            {"COPY_OPS_URL": host.url, "TERM": "xterm-256color", "PATH": "/usr/bin:/bin"},
        )
    finally:
        finisher.cancel()
    text = [line.rstrip() for line in screen.display if line.strip()]
    assert screen.exit_code == 0, text  # type: ignore[attr-defined]
    # One line, redrawn in place: the id, its end, a full bar, the bytes.
    [line] = text
    assert " succeeded " in line and "━" * 20 in line and "2.0/2.0 kB" in line, line


NOW_CLI = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("view", "lines"),
    [
        (
            {
                "id": "i",
                "state": "pending",
                "progress": {"bytes_copied": 500, "bytes_total": 2000},
                "deadline": "2026-12-01T12:05:00Z",
                "source": "https://partner.example/c/a.bin",
                "destination": {"container": "backups", "blob": "a.bin"},
                "engine": "blocks",
                "blocks": {"staged": 1, "total": 4},
                "phase": "staging",
                "history": [{"at": "2026-12-01T12:00:01Z", "phase": "staging", "event": "planned"}],
            },
            [
                "i pending 500 bytes of 2.0 kB",
                "  progress     500 bytes of 2.0 kB (25%)",
                "  deadline     2026-12-01T12:05:00Z (in 5 min)",
                "  engine       blocks, 1 of 4 blocks staged",
                "  phase        staging",
                "  moved        2026-12-01T12:00:01Z planned -> staging",
                "  source       https://partner.example/c/a.bin",
                "  destination  backups/a.bin",
            ],
        ),
        (
            {
                "id": "i",
                "state": "failed",
                "deadline": "2026-12-01T10:00:00Z",
                "error": {"code": "source_changed", "message": "the source changed"},
                "source": {"container": "in", "blob": "a"},
                "destination": {"container": "out", "blob": "a"},
            },
            [
                "i failed",
                "  deadline     2026-12-01T10:00:00Z (passed 2 h ago)",
                "  error        source_changed: the source changed",
                "  source       in/a",
                "  destination  out/a",
            ],
        ),
        (
            {
                "id": "i",
                "state": "aborted",
                "abort_reason": "deadline",
                "deadline": "2026-12-01T11:59:30Z",
                "history": [
                    {"at": "2026-12-01T11:59:31Z", "phase": "ended", "event": "finished", "reason": "aborted: deadline"}
                ],
            },
            [
                "i aborted",
                "  deadline     2026-12-01T11:59:30Z (passed 30 s ago)",
                "  reason       deadline",
                "  moved        2026-12-01T11:59:31Z finished -> ended (aborted: deadline)",
                "  source       None",
                "  destination  None",
            ],
        ),
    ],
)
def test_show_says_what_a_person_asks_first(view: dict[str, object], lines: list[str]) -> None:
    assert display.copy_details(view, NOW_CLI) == lines


def test_jobs_show_says_its_phase_and_each_move_as_show_does_for_a_copy() -> None:
    view = {
        "id": "j",
        "state": "aborted",
        "counts": {"items": 10, "aborted": 10},
        "deadline": "2026-12-01T12:05:00Z",
        "engine": "async",
        "phase": "ended",
        "history": [
            {"at": "2026-12-01T11:59:01Z", "phase": "enumerating", "event": "abort_requested"},
            {"at": "2026-12-01T11:59:02Z", "phase": "stopping", "event": "stopped", "reason": "the job was aborted"},
            {"at": "2026-12-01T12:00:00Z", "phase": "ended", "event": "finished", "reason": "aborted: 10 items"},
        ],
        "failures": [],
    }
    assert display.job_details(view, NOW_CLI) == [
        "j aborted 10/10 items, 10 aborted",
        "  deadline  2026-12-01T12:05:00Z (in 5 min)",
        "  engine    async",
        "  phase     ended",
        "  moved     2026-12-01T11:59:01Z abort_requested -> enumerating",
        "  moved     2026-12-01T11:59:02Z stopped -> stopping (the job was aborted)",
        "  moved     2026-12-01T12:00:00Z finished -> ended (aborted: 10 items)",
    ]


def test_show_says_whose_a_copy_or_a_job_is_and_who_asked_for_each_move() -> None:
    oid, admin = "1d7c1d4e-6e1a-5b8c-9c55-6a1f3b1f0e2a", "0b5c2a9e-3f0d-5e61-8d2c-5f4e3a2b1c0d"
    moves = [
        {"at": "2026-12-01T11:59:01Z", "phase": "copying", "event": "started", "by": oid},
        {"at": "2026-12-01T11:59:02Z", "phase": "copying", "event": "abort_requested", "by": admin},
    ]
    view: dict[str, object] = {"id": "i", "state": "pending", "caller": {"id": oid, "name": "Alice"}, "history": moves}
    assert display.copy_details(view, NOW_CLI)[1:4] == [
        f"  caller       Alice ({oid})",
        f"  moved        2026-12-01T11:59:01Z started -> copying by {oid}",
        f"  moved        2026-12-01T11:59:02Z abort_requested -> copying by {admin}",
    ]
    job = {"id": "j", "state": "running", "caller": {"id": oid, "name": None}}
    assert display.job_details(job, NOW_CLI)[1:] == [f"  caller  {oid}"]
    # A key's holder names nobody; an app from before callers says nothing of them.
    nobody = display.job_details({"id": "j", "state": "running", "caller": None}, NOW_CLI)
    assert nobody[1:] == ["  caller  none known (a function key's holder, or from before callers)"]
    assert display.job_details({"id": "j", "state": "running"}, NOW_CLI)[1:] == []


class EmptyApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []

    def call(self, method: str, path: str, body: object = None, query: dict[str, str] | None = None) -> object:
        self.calls.append((method, path, query))
        return {"items": [], "continuation": None}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["ls", "--state", "pending"], "no copies in state pending"),
        (["ls"], "no copies"),
        (["jobs", "ls"], "no jobs"),
    ],
)
def test_an_empty_list_says_so(argv: list[str], said: str) -> None:
    out = io.StringIO()
    args = parser().parse_args(["--url", "http://app", *argv])
    assert run(args, EmptyApi(), Output(out, as_json=False), lambda seconds: None) == 0  # type: ignore[arg-type]
    assert out.getvalue() == said + "\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--url", "http://app", "ls", "--state", "pending"],
        ["ls", "--state", "pending", "--json", "--url", "http://app"],
        ["--url", "http://elsewhere", "ls", "--json", "--state", "pending", "--url", "http://app"],
        ["jobs", "--json", "ls", "--url", "http://app"],
        ["jobs", "ls", "--url", "http://app", "--json"],
    ],
)
def test_options_go_before_or_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.json, args.url) == (True, "http://app")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["start", "nowhere", "backups/x"], "source: 'nowhere' is not a blob: give container/blob"),
        (["start", "in/", "backups/x"], "source: 'in/' is not a blob"),
        (["start", "in/a", "backups"], "destination: 'backups' is not a blob"),
        (["jobs", "start", "/x", "out/"], "source: '/x' names no container"),
    ],
)
def test_a_source_it_cannot_read_is_explained_with_its_forms(argv: list[str], said: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["--url", "http://127.0.0.1:9", *argv], stdout=out, stderr=err) == 2
    assert out.getvalue() == "" and err.getvalue().count("\n") == 1
    assert err.getvalue().startswith(f"copy-ops: {said}")
    if argv[0] == "start" and "source" in said:
        assert "URL" in err.getvalue()


@pytest.mark.system
def test_a_copy_that_ended_at_once_shows_no_invented_bytes_on_a_terminal(host: DevHostProcess, blobs: Blobs) -> None:
    blobs.put(blobs.src, "once.bin", b"x" * 20)
    screen = run_in_terminal(
        [str(CONSOLE_SCRIPT), "start", f"{blobs.src}/once.bin", f"{blobs.dst}/once.bin", "--wait"],
        {"COPY_OPS_URL": host.url, "TERM": "xterm-256color", "PATH": "/usr/bin:/bin"},
    )
    [line] = [line.rstrip() for line in screen.display if line.strip()]
    assert screen.exit_code == 0, line  # type: ignore[attr-defined]
    assert " succeeded " in line and "━" * 20 in line and "1/1" not in line and "bytes" not in line, line
