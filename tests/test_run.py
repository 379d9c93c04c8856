"""``make run`` stops everything it started, whatever stops it: Ctrl-C on a terminal, SIGTERM
to make, SIGTERM to make's process group (make passes it on to the script, which got it
too), a second signal during the cleanup; and it refuses to start while a port it serves
is taken, saying which. Driven as a person drives it: ``make run`` itself, on a
pseudo-terminal, in a checkout of its own (its local.settings.json and .azurite/; the
installed environments shared), and afterwards no process of it is left."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import subprocess
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit import PROJECT_ROOT, http_call
from tests.support.waiting import until

pytestmark = pytest.mark.system

# What scripts/run.sh serves: the app, the stand-in's blob service, Azurite's queue, blob
# and table services.
APP = 7071
PORTS = (APP, 10000, 10001, 10010, 10012)
# Left out of the checkout: what make run writes.
OWN = {".git", ".azurite", "local.settings.json", ".hypothesis", ".pytest_cache"}


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def left_in(directory: Path) -> list[str]:
    """The processes still running in ``directory`` (every process make run starts is)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == directory:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {command[:120]}")
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


class Run:
    """``make run`` on a pseudo-terminal that is its controlling terminal, as in a shell:
    Ctrl-C typed there reaches make's foreground process group. The terminal's output is
    read all along (a full terminal would block the script)."""

    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout
        self._master, slave = os.openpty()
        env = {key: value for key, value in os.environ.items() if not key.startswith(("COPY_", "AzureWebJobs"))}
        env.pop("MAKEFLAGS", None)
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=checkout,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509 (a new session's terminal)
        )
        os.close(slave)
        self._output = bytearray()
        self._reading = threading.Thread(target=self._read, daemon=True)
        self._reading.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._master], [], [], 1)
            if not ready:
                if self.process.poll() is not None:
                    return
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not data:
                return
            self._output += data

    @property
    def output(self) -> str:
        return bytes(self._output).decode(errors="replace")

    def serving(self) -> bool:
        """Whether the app answers (not its 503 while it loads)."""
        if not listening(APP):
            return False
        try:
            return http_call(f"http://127.0.0.1:{APP}/api/copies", "GET").status == 200
        except OSError:
            return False

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def close(self) -> None:
        if self.process.poll() is None:  # a failed test: stop it as a person would
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(60)
        self._reading.join(5)
        os.close(self._master)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The project as make run sees it, in a directory of its own."""
    if any(listening(port) for port in PORTS):
        pytest.fail(f"something already listens on one of {PORTS}: stop your own make run or Azurite first")
    for entry in PROJECT_ROOT.iterdir():
        if entry.name not in OWN:
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path.resolve()


@pytest.fixture
def started(checkout: Path) -> Iterator[Run]:
    run = Run(checkout)
    try:
        assert until(lambda: run.serving() or run.process.poll() is not None, timeout=120), run.output[-3000:]
        assert run.serving(), run.output[-3000:]
        yield run
    finally:
        run.close()


def ctrl_c(run: Run) -> None:
    run.type(b"\x03")


def term_make(run: Run) -> None:
    os.kill(run.process.pid, signal.SIGTERM)


def term_group(run: Run) -> None:
    os.killpg(run.process.pid, signal.SIGTERM)


def term_then_ctrl_c(run: Run) -> None:
    """A second signal during the cleanup: SIGTERM to the group, then Ctrl-C once the app
    (stopped first) is gone, while the stand-in and Azurite are still being stopped."""
    os.killpg(run.process.pid, signal.SIGTERM)
    until(lambda: not listening(APP), timeout=30, interval=0.02)
    run.type(b"\x03")
    os.killpg(run.process.pid, signal.SIGTERM)


@pytest.mark.parametrize("stop", [ctrl_c, term_make, term_group, term_then_ctrl_c], ids=lambda stop: stop.__name__)
def test_make_run_stops_everything_it_started(started: Run, stop: Callable[[Run], None]) -> None:
    assert left_in(started.checkout), "make run started nothing in its checkout"
    stop(started)
    started.process.wait(60)
    assert started.process.returncode != 0, started.output[-2000:]
    assert until(lambda: not left_in(started.checkout), timeout=30), left_in(started.checkout)
    assert not [port for port in PORTS if listening(port)]


def test_make_run_refuses_to_start_while_the_apps_port_is_taken(checkout: Path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the last test's closed connections
        taken.bind(("127.0.0.1", APP))
        taken.listen()
        result = subprocess.run(
            ["make", "--no-print-directory", "run"],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert f"port {APP} is taken" in result.stderr, result.stderr
    assert not left_in(checkout)
    assert not (checkout / ".azurite").exists()  # nothing was started
