"""The copy-ops CLI: what it prints (pure, table-driven), and every command against the
development host over real HTTP, the installed console script included."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from copy_ops_cli import display
from copy_ops_cli.client import problem_line
from copy_ops_cli.main import main
from devkit import PROJECT_ROOT, PendingCopyProxy
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess
from tests.test_fanout import FAST_QUEUES

CONSOLE_SCRIPT = PROJECT_ROOT / ".venv" / "bin" / "copy-ops"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_sizes_read_as_people_read_them(count: int, text: str) -> None:
    assert display.size(count) == text


@pytest.mark.parametrize(
    ("done", "total", "text"),
    [
        (0, 10, "[..........]   0%"),
        (5, 10, "[#####.....]  50%"),
        (10, 10, "[##########] 100%"),
        (12, 10, "[##########] 100%"),  # never past the end
        (3, 0, ""),  # nothing known: no bar
        (3, None, ""),
    ],
)
def test_progress_bars(done: int, total: int | None, text: str) -> None:
    assert display.bar(done, total, width=10) == text


@pytest.mark.parametrize(
    ("status", "body", "line"),
    [
        (
            400,
            b'{"title": "Invalid request", "detail": "2 problems", "errors": '
            b'[{"field": "destination.blob", "message": "must not contain .."}, '
            b'{"field": "timeout_seconds", "message": "must be at least 1"}]}',
            "400 Invalid request: 2 problems: destination.blob: must not contain ..; "
            "timeout_seconds: must be at least 1",
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
            {"id": "i", "state": "pending", "progress": {"bytes_copied": 512, "bytes_total": 2048}},
            "i pending [########......................]  25% 512 B of 2.0 KiB",
        ),
    ],
)
def test_a_copy_in_one_line(view: dict[str, object], line: str) -> None:
    assert display.copy_progress(view) == line


def test_a_job_in_one_line() -> None:
    view = {"id": "j", "state": "running", "counts": {"items": 4, "pending": 1, "failed": 1, "bytes_copied": 3072}}
    assert (
        display.job_progress(view)
        == "j running [######################........] 75% 3/4 items, 3.0 KiB copied, 1 failed"
    )


def test_tables_pad_their_columns() -> None:
    assert display.table([["a", "bbb"], ["cccc", "d"]], ["X", "Y"]) == "X     Y\na     bbb\ncccc  d"


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
        },
        host_json=FAST_QUEUES,
    )
    yield started
    started.stop()


def cli(host: DevHostProcess, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--url", host.url, *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


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


def test_a_pending_copy_listed_aborted_and_watched(host: DevHostProcess, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    blobs.put(blobs.src, "p.bin", b"x")
    proxy.pending_copies = True
    code, out, _ = cli(host, "--json", "start", f"{blobs.src}/p.bin", f"{blobs.dst}/p.bin", "--timeout", "600")
    view = json.loads(out)
    assert code == 0 and view["state"] == "pending"
    code, out, _ = cli(host, "ls", "--state", "pending")
    assert code == 0 and out.splitlines()[0].split() == ["ID", "STATE", "DESTINATION", "DEADLINE", "REASON"]
    assert any(line.startswith(view["id"]) for line in out.splitlines())
    code, out, _ = cli(host, "abort", view["id"])
    assert code == 0 and out.startswith(f"{view['id']} aborted")
    code, out, _ = cli(host, "show", view["id"], "--watch")
    assert code == 1 and "aborted" in out  # it ended, but not as succeeded


def test_refusals_are_one_line_naming_the_field_and_exit_non_zero(host: DevHostProcess, blobs: Blobs) -> None:
    code, out, err = cli(host, "start", f"{blobs.src}/a.bin", f"{blobs.dst}/../escape")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("copy-ops: 400 ") and "destination.blob" in err
    code, _, err = cli(host, "show", "9999999999999-00000000")
    assert code == 1 and "404" in err
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


def test_a_job_started_watched_to_its_end_and_reported(host: DevHostProcess, blobs: Blobs) -> None:
    for index in range(5):
        blobs.put(blobs.src, f"drop/{index}.bin", b"x" * 10)
    code, out, err = cli(host, "jobs", "start", f"{blobs.src}/drop/", f"{blobs.dst}/copied/", "--wait")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1].split()[1:3] == ["succeeded", "[##############################]"]
    job_id = out.split()[0]
    code, out, _ = cli(host, "jobs", "ls")
    assert code == 0 and job_id in out
    code, out, _ = cli(host, "jobs", "report", job_id)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 5 and {line["state"] for line in lines} == {"succeeded"}
    code, _, err = cli(host, "jobs", "abort", job_id)
    assert code == 1 and err.startswith("copy-ops: 409")
