"""python -m devhost [--port 7071]: serve the function app locally without Core Tools."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description=(
            "Development host for the copy-ops function app: serves its HTTP routes under /api, "
            "fires its timers on their NCRONTAB schedules, runs its queue triggers against the "
            "queue service as the Functions host does, and runs a timer function now on "
            "POST /admin/functions/{name}. Reads local.settings.json Values (the process "
            "environment takes precedence). A development tool: use `func start` where Azure "
            "Functions Core Tools is installed, and never deploy this."
        ),
    )
    parser.add_argument("--port", type=int, default=7071, help="port to listen on (default 7071)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--settings", default="local.settings.json", help="local settings file")
    parser.add_argument("--verbose", action="store_true", help="log everything at DEBUG, the Azure SDK's too")
    parser.add_argument("--quiet", action="store_true", help="at start, one line for the functions, not one each")
    parser.add_argument("--host-json", default="host.json", help="the host.json to read (default: the app's)")
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("azure").setLevel(logging.DEBUG if args.verbose else logging.WARNING)

    from devhost.host import DevHost, DevServer, load_local_settings

    root = Path.cwd()
    load_local_settings(root / args.settings)
    sys.path.insert(0, str(root))
    log = logging.getLogger("devhost")
    # Listen before loading the app (slow: it imports and indexes the whole app), so that
    # a client polling a host just restarted gets 503 with Retry-After, not a refusal.
    server = DevServer((args.host, args.port))
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http")
    serving.daemon = True
    serving.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log.info("listening on http://%s:%s (503 until the function app is loaded)", args.host, args.port)
    host: DevHost | None = None
    try:
        try:
            host = DevHost(root=root, host_json=Path(args.host_json))
        except Exception:
            log.exception("the function app failed to load")
            return 1
        host.start(server)
        each = logging.DEBUG if args.quiet else logging.INFO
        for template in host.router.templates:
            log.log(each, "route %s/%s", host.router.prefix, template)
        for timer in host.timers.values():
            log.log(each, "timer %s schedule=%r", timer.name, timer.schedule.expression)
        for queue in host.queues.values():
            log.log(each, "queue %s queue=%r connection=%s", queue.name, queue.queue, queue.connection)
        log.info(
            "ready: serving the function app (%s routes, %s timers, %s queue triggers)",
            len(host.router.templates),
            len(host.timers),
            len(host.queues),
        )
        # Joined in short steps, so that Ctrl-C and SIGTERM are taken at once (Windows too).
        while serving.is_alive():
            serving.join(0.2)
        log.error("the HTTP server stopped on its own")
        return 1
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        if host is not None:
            host.stop()
        else:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
