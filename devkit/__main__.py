"""python -m devkit proxy --azurite-port N: the pending-copy proxy as a process of its own
(for benchmarks: its work must not share the measured client's interpreter lock).

python -m devkit standin --azurite-port N [--port 10000] [--rate BYTES]: the same proxy as
the local stand-in of Azure that ``make run`` puts in front of Azurite."""

from __future__ import annotations

import argparse
import sys

from devkit.pacing import DEFAULT_RATE, Pacing
from devkit.proxy import PendingCopyProxy, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    proxy = commands.add_parser("proxy", help="the pending-copy proxy in front of Azurite")
    proxy.add_argument("--azurite-port", type=int, required=True)
    proxy.add_argument("--latency-ms", type=float, default=0.0)
    proxy.add_argument("--pending", action="store_true", help="answer Copy Blob as pending from the start")
    standin = commands.add_parser("standin", help="the local stand-in of Azure in front of Azurite (make run)")
    standin.add_argument("--azurite-port", type=int, required=True, help="Azurite's blob service")
    standin.add_argument("--port", type=int, default=10000, help="where the stand-in listens (default 10000)")
    moves = f"bytes a second a copy from another account moves (default {DEFAULT_RATE})"
    standin.add_argument("--rate", type=float, default=DEFAULT_RATE, help=moves)
    args = parser.parse_args(argv)
    if args.command == "standin":
        server = PendingCopyProxy(args.azurite_port, port=args.port)
        server.index.keep_history = False
        seeded = server.seed_index()
        server.start().pace(Pacing(rate=args.rate))
        print(f"stand-in of Azure on 127.0.0.1:{server.port} ({seeded} tagged blobs indexed)", flush=True)
    else:
        server = serve(args.azurite_port, latency=args.latency_ms / 1000, pending=args.pending)
    # The parent reads the port from this line.
    print(f"listening {server.port}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
