"""``copy-ops jobs retry``: the request it sends, what it prints (as ``jobs start`` does, and
``--json``), ``--wait``; and the attempts ``jobs show`` says. Pure: a stand-in for the API
(the wire's proof of the route: tests/test_job_retry_http.py)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from copy_ops_cli import display
from copy_ops_cli.main import Output, parser, run

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NEW = {
    "id": "8203450000000-0b0b0b0b",
    "state": "enumerating",
    "counts": {"items": 0},
    "retry_of": "8203450000000-0a0a0a0a",
}


class Api:
    """Answers a retry with the new job, then each read with the next of ``reads``."""

    def __init__(self, *reads: dict[str, Any]) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.reads = list(reads)

    def call(self, method: str, path: str, body: object = None, query: dict[str, str] | None = None) -> object:
        self.calls.append((method, path, body))
        return NEW if method == "POST" else self.reads.pop(0)


def cli(api: Api, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = parser().parse_args(["--url", "http://app", *argv])
    code = run(args, api, Output(out, as_json=args.json), lambda seconds: None)  # type: ignore[arg-type]
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("argv", "body"),
    [
        ([], {}),
        (["--timeout-seconds", "900"], {"timeout_seconds": 900}),
        (["--deadline", "2026-12-01T14:00:00Z"], {"deadline": "2026-12-01T14:00:00Z"}),
        (["--attempts", "4"], {"retry": {"attempts": 4}}),
        (["--attempts", "2", "--backoff-seconds", "5"], {"retry": {"attempts": 2, "backoff_seconds": 5.0}}),
        (["--sas", "sv=1&sig=x", "--include-aborted"], {"sas": "sv=1&sig=x", "include_aborted": True}),
    ],
)
def test_jobs_retry_posts_what_was_given_and_prints_the_new_job(argv: list[str], body: dict[str, Any]) -> None:
    api = Api()
    code, printed = cli(api, "jobs", "retry", "8203450000000-0a0a0a0a", *argv)
    assert api.calls == [("POST", "/api/jobs/8203450000000-0a0a0a0a/retry", body)]
    assert (code, printed) == (0, "8203450000000-0b0b0b0b enumerating 0/0 items\n")


def test_jobs_retry_json_prints_the_apis_answer() -> None:
    code, printed = cli(Api(), "jobs", "retry", "8203450000000-0a0a0a0a", "--json")
    assert code == 0 and json.loads(printed) == NEW


def test_jobs_retry_wait_follows_the_new_job_to_its_end() -> None:
    ended = {**NEW, "state": "succeeded", "counts": {"items": 1, "succeeded": 1}}
    api = Api({**NEW, "state": "running"}, ended)
    code, _ = cli(api, "jobs", "retry", "8203450000000-0a0a0a0a", "--wait", "--json")
    assert code == 0 and [path for _, path, _ in api.calls][1:] == ["/api/jobs/8203450000000-0b0b0b0b"] * 2


def test_a_deadline_is_given_one_way_only() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["jobs", "retry", "x", "--timeout-seconds", "60", "--deadline", "2026-12-01T14:00:00Z"])


def test_jobs_show_says_what_was_retried_and_by_which_job() -> None:
    view = {
        "id": "j",
        "state": "failed",
        "counts": {"items": 10, "succeeded": 8, "failed": 2, "retried": 3},
        "retry_of": "i",
        "retried_by": "k",
    }
    assert display.job_details(view, NOW) == [
        "j failed 10/10 items, 2 failed, 3 retried",
        "  retry of    i",
        "  retried by  k",
    ]
